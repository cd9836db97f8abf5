"""Boothby's kafka transport and kafka log sink, built on aiokafka."""

__version__ = "0.1.0"
