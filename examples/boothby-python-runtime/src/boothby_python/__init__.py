"""Boothby's Python runtime: runs ``def handler(event, context)`` functions in warm worker processes."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("boothby-python-runtime")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0.0.0"
