"""The redis transport for Boothby: work queues on Redis Streams, replies over pub/sub."""

__version__ = "0.1.0"
