"""Take one function's invocations from its queue, never more than the deflector has free worker slots.

Acknowledgements (the README explains the delivery semantics at length):

- A delivery is acknowledged in ``started``, just before a worker runs it. Until then the
  broker keeps it unacknowledged and gives it to another consumer if this connection is
  lost, so an invocation that no worker started is not lost.
- After the acknowledgement the broker removes the invocation, so a deflector that dies while
  running it does not cause a second run. The exception is an acknowledgement that never
  reached the broker because the connection broke just after it was sent. Acknowledgements are
  tracked until the broker's reply to a later consume on the same channel proves that it
  processed them. Losing the connection before that is logged as a warning with the request ids.

Prefetch: RabbitMQ counts a consumer's prefetch in unacknowledged deliveries, so acknowledging
at start would let the broker send one more invocation for every one that starts. Instead at
most one consumer per function is active, with a prefetch no larger than the free slots when
it was created, and it is cancelled before any of its deliveries is acknowledged or rejected.
A new consumer is created when ``receive`` needs one, or in ``finished`` for the slot that the
finished invocation frees. A ``basic.qos`` goes before the consume only when the prefetch
differs from the previous consumer's. pika rejects, with requeue, deliveries that were already
on their way when a cancel was sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

import pika
from pika.channel import Channel

from boothby.errors import TransportUnavailable
from boothby.transport import Delivery

from .connection import BrokerConnection

logger = logging.getLogger(__name__)


class RabbitMQDelivery(Delivery):
    """One invocation delivered to a consumer, unacknowledged until ``settled`` is true."""

    __slots__ = ("consumer", "channel", "consumer_tag", "delivery_tag", "request_id", "settled")

    def __init__(self, payload: bytes, consumer: FunctionConsumer, channel: Channel, consumer_tag: str,
                 delivery_tag: int, request_id: str) -> None:
        super().__init__(payload)
        self.consumer = consumer
        self.channel = channel
        self.consumer_tag = consumer_tag
        self.delivery_tag = delivery_tag
        self.request_id = request_id
        self.settled = False

    async def started(self) -> None:
        """Acknowledge the invocation. Raise ``TransportUnavailable`` if it arrived on a connection that is gone."""
        self.consumer.acknowledge_start(self)

    async def finished(self) -> None:
        self.consumer.finish(self)

    async def release(self) -> None:
        if not self.settled:
            self.consumer.settle(self, give_back=True)


class FunctionConsumer:
    """Takes one function's invocations from its queue on a channel of its own."""

    def __init__(self, function: str, queue: str, connection: BrokerConnection) -> None:
        self.function = function
        self.queue = queue
        self.connection = connection
        self.channel: Channel | None = None
        self._prefetch = 0
        self._consumer_tag: str | None = None
        self._credit = 0
        self._buffer: deque[RabbitMQDelivery] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._max_count = 0
        self._consume_on_finish = False
        self._ack_serial = 0
        self._unconfirmed: dict[int, str] = {}

    # Connection changes.

    def attach(self, channel: Channel) -> None:
        """Use ``channel``, freshly opened on a new connection, from now on."""
        self.channel = channel
        self._prefetch = 0
        self._consumer_tag = None
        self._credit = 0

    def detach(self) -> None:
        """Forget the channel of a lost connection; the broker gives its unacknowledged deliveries to other consumers."""
        if self._unconfirmed:
            logger.warning(
                "rabbitmq transport (deflector): the connection was lost before the broker confirmed the "
                "acknowledgements of %d running invocations of %s (requests %s); if they did not arrive, the broker "
                "delivers these invocations again and another deflector may run them a second time",
                len(self._unconfirmed), self.function, ", ".join(self._unconfirmed.values()),
            )
        self.channel = None
        self._consumer_tag = None
        self._credit = 0
        self._buffer.clear()
        self._unconfirmed.clear()
        self._wake()

    # Receiving.

    async def receive(self, max_count: int) -> list[RabbitMQDelivery]:
        """Wait for between 1 and ``max_count`` invocations, through reconnects if the connection is lost."""
        self._consume_on_finish = True
        loop = asyncio.get_running_loop()
        while not self._buffer:
            await self.connection.wait_ready()
            channel = self.channel
            if channel is None or not channel.is_open:
                # The connection is being closed; the deflector retries after a short pause.
                raise self.connection.unavailable()
            if self._consumer_tag is not None and not 0 < self._credit <= max_count:
                self._cancel_consumer(channel)
            if self._consumer_tag is None:
                self._consume(channel, max_count)

            self._max_count = max_count
            waiter = self._waiter = loop.create_future()
            try:
                await waiter
            except asyncio.CancelledError:
                self._stop_receiving(channel)
                raise
            finally:
                self._waiter = None

        count = min(max_count, len(self._buffer))
        return [self._buffer.popleft() for _ in range(count)]

    def _stop_receiving(self, channel: Channel) -> None:
        # A cancelled receive means the deflector stops taking invocations: give back what
        # arrived meanwhile and do not start consumers for freed slots until it calls receive again.
        self._consume_on_finish = False
        if self._consumer_tag is not None and channel.is_open:
            self._cancel_consumer(channel)
        while self._buffer:
            self.settle(self._buffer.popleft(), give_back=True)

    def _consume(self, channel: Channel, prefetch: int) -> None:
        if self._prefetch != prefetch:
            # A per-consumer prefetch applies to the consumers created after it on this channel.
            channel.basic_qos(prefetch_count=prefetch)
            self._prefetch = prefetch
        serial = self._ack_serial
        self._consumer_tag = channel.basic_consume(
            self.queue, self._on_message, callback=lambda frame: self._confirm_acks(serial))
        self._credit = prefetch

    def _cancel_consumer(self, channel: Channel) -> None:
        tag, self._consumer_tag = self._consumer_tag, None
        self._credit = 0
        if tag is not None and channel.is_open:
            channel.basic_cancel(tag)

    def _confirm_acks(self, serial: int) -> None:
        # The broker handles a channel's methods in order, so its reply to a consume sent after
        # acknowledgement number ``serial`` proves that it processed that one and every earlier one.
        unconfirmed = self._unconfirmed
        while unconfirmed:
            oldest = next(iter(unconfirmed))
            if oldest > serial:
                break
            del unconfirmed[oldest]

    def _on_message(self, channel: Channel, method: pika.spec.Basic.Deliver, properties: pika.BasicProperties,
                    body: bytes) -> None:
        if channel is not self.channel or method.consumer_tag != self._consumer_tag:
            channel.basic_reject(method.delivery_tag, requeue=True)
            return
        self._credit -= 1
        self._buffer.append(RabbitMQDelivery(body, self, channel, method.consumer_tag, method.delivery_tag,
                                             properties.correlation_id or ""))
        if len(self._buffer) == 1:
            # The receiving task resumes in a later pass of the event loop, after pika has handled
            # every frame of this socket read, so deliveries that arrive together return together.
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # Acknowledgements.

    def acknowledge_start(self, delivery: RabbitMQDelivery) -> None:
        channel = delivery.channel
        if delivery.settled:
            return
        delivery.settled = True
        if channel is not self.channel or not channel.is_open:
            raise TransportUnavailable(
                f"request {delivery.request_id} of {self.function} was not started because the connection it "
                "arrived on was lost; the broker delivers it again to a connected deflector", backend="rabbitmq",
            )
        refill = self._cancel_before_settling(delivery)
        channel.basic_ack(delivery.delivery_tag)
        self._ack_serial += 1
        self._unconfirmed[self._ack_serial] = delivery.request_id
        if refill:
            self._consume_for_waiting_receive(channel)

    def finish(self, delivery: RabbitMQDelivery) -> None:
        """Acknowledge a dropped invocation if needed, then start a consumer for the slot it frees.

        That consumer goes out in the same write as the invocation's result. It is skipped when
        a receive already waits. It is also skipped when it would need a prefetch change first,
        because pika sends the consume only after the broker's reply to that change, and the
        next receive creates a consumer anyway.
        """
        if not delivery.settled:
            self.settle(delivery, give_back=False)
        channel = self.channel
        if (self._consume_on_finish and self._consumer_tag is None and self._waiter is None and self._prefetch == 1
                and channel is delivery.channel and channel.is_open):
            self._consume(channel, 1)

    def settle(self, delivery: RabbitMQDelivery, give_back: bool) -> None:
        """Reject an unstarted invocation with requeue (``give_back``), or acknowledge one that was dropped.

        A delivery of a lost connection needs neither, because the broker already requeued it.
        """
        delivery.settled = True
        channel = delivery.channel
        if channel is not self.channel or not channel.is_open:
            return
        refill = self._cancel_before_settling(delivery)
        if give_back:
            channel.basic_reject(delivery.delivery_tag, requeue=True)
        else:
            channel.basic_ack(delivery.delivery_tag)
        if refill:
            self._consume_for_waiting_receive(channel)

    def _cancel_before_settling(self, delivery: RabbitMQDelivery) -> bool:
        # Settling a delivery of the active consumer would let the broker send it one more:
        # cancel that consumer first, in the same write. Returns whether it was cancelled.
        if delivery.consumer_tag != self._consumer_tag:
            return False
        self._cancel_consumer(delivery.channel)
        return True

    def _consume_for_waiting_receive(self, channel: Channel) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done() and not self._buffer and self._consumer_tag is None:
            self._consume(channel, self._max_count)
