"""The RabbitMQ transport for Boothby: invocations and results over a RabbitMQ broker with pika."""

__version__ = "0.1.0"
