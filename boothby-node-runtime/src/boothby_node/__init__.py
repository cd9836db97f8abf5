"""The Node.js runtime plugin for Boothby."""

__version__ = "0.1.0"
