"""The deflector side: one connection with a consumer per function and a channel that publishes results."""

from __future__ import annotations

from typing import Sequence

import pika
import pika.exceptions
from pika.adapters.asyncio_connection import AsyncioConnection
from pika.channel import Channel

from boothby.errors import TransportUnavailable

from .client import CONTENT_TYPE
from .connection import BrokerConnection, describe_error
from .consumer import FunctionConsumer, RabbitMQDelivery
from .queues import declare_request_queue, request_queue
from .settings import RabbitMQSettings


class DeflectorServer:
    """One deflector's connection: a channel per function for invocations and one channel for results."""

    def __init__(self, settings: RabbitMQSettings, functions: Sequence[str]) -> None:
        self.connection = BrokerConnection(settings, "deflector", self._set_up, self._lost)
        self.consumers = {
            function: FunctionConsumer(function, request_queue(settings.queue_prefix, function), self.connection)
            for function in functions
        }
        self._reply_channel: Channel | None = None

    async def start(self) -> None:
        await self.connection.start()

    async def _set_up(self, connection: AsyncioConnection) -> None:
        reply_channel = await self.connection.open_channel(connection)
        channels = {}
        for function, consumer in self.consumers.items():
            channel = await self.connection.open_channel(connection)
            await declare_request_queue(self.connection, channel, consumer.queue)
            channels[function] = channel
        self._reply_channel = reply_channel
        for function, consumer in self.consumers.items():
            consumer.attach(channels[function])

    def _lost(self, reason: str) -> None:
        self._reply_channel = None
        for consumer in self.consumers.values():
            consumer.detach()

    async def receive(self, function: str, max_count: int) -> list[RabbitMQDelivery]:
        return await self.consumers[function].receive(max_count)

    def reply(self, address: str, payload: bytes, request_id: str) -> None:
        """Publish a result to a grappler's reply queue; the broker drops it if that queue is gone."""
        channel = self._reply_channel
        if channel is None or not self.connection.ready:
            raise self.connection.unavailable()
        properties = pika.BasicProperties(content_type=CONTENT_TYPE, correlation_id=request_id)
        try:
            channel.basic_publish("", address, payload, properties)
        except (pika.exceptions.AMQPError, OSError) as error:
            raise TransportUnavailable(
                f"publishing the result of request {request_id} to RabbitMQ failed: {describe_error(error)}",
                backend="rabbitmq",
            ) from error

    async def close(self) -> None:
        self._reply_channel = None
        await self.connection.close()
