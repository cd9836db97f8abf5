"""The grappler side: publish invocations to the function queues and receive results on a reply queue."""

from __future__ import annotations

import logging
import time
from typing import Sequence

import pika
import pika.exceptions
from pika.adapters.asyncio_connection import AsyncioConnection
from pika.channel import Channel

from boothby.errors import TransportUnavailable
from boothby.transport import OnDisconnect, OnReply

from .connection import BrokerConnection, describe_error
from .queues import declare_request_queue, reply_queue, request_queue
from .settings import RabbitMQSettings

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/avro"
"""The content type of invocations and results: Avro single-object encoding."""


class GrapplerClient:
    """One grappler worker process's connection: a channel that publishes invocations and consumes its reply queue.

    The reply queue is exclusive to the connection, so the broker deletes it when the connection
    is lost. It is declared again under the same name after each reconnect, so the reply address
    handed to the grappler never changes.
    """

    def __init__(self, settings: RabbitMQSettings, functions: Sequence[str], on_reply: OnReply,
                 on_disconnect: OnDisconnect) -> None:
        self.queues = {function: request_queue(settings.queue_prefix, function) for function in functions}
        self.address = reply_queue(settings.queue_prefix)
        self.on_reply = on_reply
        self.on_disconnect = on_disconnect
        self.connection = BrokerConnection(settings, "grappler", self._set_up, self._lost)
        self._channel: Channel | None = None

    @property
    def connected(self) -> bool:
        return self._channel is not None and self.connection.ready and not self.connection.blocked

    async def start(self) -> str:
        await self.connection.start()
        return self.address

    async def _set_up(self, connection: AsyncioConnection) -> None:
        channel = await self.connection.open_channel(connection)
        for queue in self.queues.values():
            await declare_request_queue(self.connection, channel, queue)
        await self.connection.call(lambda callback: channel.queue_declare(
            self.address, exclusive=True, auto_delete=True, callback=callback))
        await self.connection.call(lambda callback: channel.basic_consume(
            self.address, self._on_message, auto_ack=True, callback=callback))
        self._channel = channel

    def _lost(self, reason: str) -> None:
        self._channel = None
        self.on_disconnect(reason)

    def _on_message(self, channel: Channel, method: pika.spec.Basic.Deliver, properties: pika.BasicProperties,
                    body: bytes) -> None:
        # The grappler core decodes the result, matches its id to a waiting request, and drops and
        # counts results whose request has ended. With auto_ack the broker needs no acknowledgement.
        self.on_reply(body)

    def publish(self, function: str, payload: bytes, request_id: str, deadline: float) -> None:
        """Publish one invocation; it expires in the broker at ``deadline`` (``time.time()`` seconds)."""
        channel = self._channel
        if channel is None or not self.connected:
            raise self.connection.unavailable("retry the request later")
        milliseconds_left = int((deadline - time.time()) * 1000)
        properties = pika.BasicProperties(
            content_type=CONTENT_TYPE,
            correlation_id=request_id,
            reply_to=self.address,
            expiration=str(max(milliseconds_left, 1)),
        )
        try:
            channel.basic_publish("", self.queues.get(function) or self._queue_name(function), payload, properties)
        except (pika.exceptions.AMQPError, OSError) as error:
            logger.warning("rabbitmq transport (grappler): publishing request %s for %s failed: %s",
                           request_id, function, describe_error(error))
            raise TransportUnavailable(
                f"publishing to RabbitMQ at {self.connection.settings.safe_url} failed: {describe_error(error)}",
                backend="rabbitmq",
            ) from error

    def _queue_name(self, function: str) -> str:
        # A function missing from the configuration has no queue declared by this grappler. The
        # broker drops what is published to it unless a deflector serving it declared the queue.
        return request_queue(self.connection.settings.queue_prefix, function)

    async def close(self) -> None:
        self._channel = None
        await self.connection.close()
