"""The grappler side of the transport: publish invocations, read this process's reply topic, sweep dead ones."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Sequence

from aiokafka.errors import KafkaError
from boothby.errors import TransportUnavailable
from boothby.transport import OnDisconnect, OnReply

from .connection import CLOSE_TIMEOUT, Connection, close_quietly, discard_outcome
from .producer import ReplaceableProducer
from .replies import ReplyChannel
from .settings import TransportSettings
from .topics import TopicAdmin, TopicSpec, describe_error, new_reply_topic, request_topic

logger = logging.getLogger(__name__)

REPLY_TOPIC_MIN_AGE = 60.0
"""Seconds a reply topic must exist before the sweep may delete it; its grappler joins its group well before."""


class GrapplerSide(Connection):
    """One grappler worker process's producer, reply channel and broker monitor."""

    role = "grappler"

    def __init__(self, options: TransportSettings, functions: Sequence[str], on_reply: OnReply,
                 on_disconnect: OnDisconnect) -> None:
        super().__init__(options)
        self.functions = list(functions)
        self.on_reply = on_reply
        self.on_disconnect = on_disconnect
        self.address = new_reply_topic(options.topic_prefix)
        self.topics: TopicAdmin | None = None
        self.replies: ReplyChannel | None = None
        self._lost: asyncio.Future[None] | None = None

    @property
    def connected(self) -> bool:
        return self.ready.is_set() and self.monitor is not None and self.monitor.connected

    async def connect(self) -> None:
        client_options = self.options.connection.client_options()
        admin = self.new_admin(client_options)
        producer: ReplaceableProducer | None = None
        replies: ReplyChannel | None = None
        try:
            await admin.start()
            topics = TopicAdmin(admin, self.options.request_timeout_ms)
            retention = str(self.options.reply_retention_ms)
            reply_spec = TopicSpec(1, self.options.replication_factor, {
                "retention.ms": retention,
                "segment.ms": retention,
                "max.message.bytes": str(self.options.max_message_bytes),
            })
            # The grappler creates the request topics too, so that a broker with automatic topic
            # creation never makes them first with its default partition count.
            await topics.ensure({**self.request_topics(self.functions), self.address: reply_spec})
            producer = self.new_producer(client_options)
            await producer.start()
            replies = ReplyChannel(self.address, self.options, client_options, self.client_id(), self.on_reply)
            await replies.start(assignment_timeout=self.options.request_timeout_ms / 1000)
        except BaseException:
            await close_quietly(replies.stop() if replies else None, producer.stop() if producer else None,
                                admin.close())
            raise

        self.admin, self.topics, self.producer, self.replies = admin, topics, producer, replies
        self._lost = asyncio.get_running_loop().create_future()
        self.start_monitor(admin, self._connection_lost, self._connection_restored)
        self.spawn(self._sweep_reply_topics(), "sweep")
        self.ready.set()
        logger.info("kafka transport: %s connected to %s; replies arrive on topic %s", self.label, self.servers,
                    self.address)

    def _connection_lost(self, reason: str) -> None:
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)
        self.on_disconnect(f"lost the connection to Kafka at {self.servers}: {reason}")

    def _connection_restored(self) -> None:
        self._lost = asyncio.get_running_loop().create_future()

    def _unavailable(self) -> TransportUnavailable:
        if self.monitor is None:
            message = f"not connected to Kafka at {self.servers} yet; the grappler keeps trying, retry later"
        else:
            message = (f"Kafka at {self.servers} is not reachable ({self.monitor.last_error}); "
                       "the grappler reconnects by itself, retry later")
        return TransportUnavailable(message, backend="kafka")

    async def publish(self, function: str, payload: bytes, request_id: str) -> None:
        if not self.connected or self.producer is None:
            raise self._unavailable()
        limit = self.options.max_message_bytes
        if len(payload) > limit:
            raise TransportUnavailable(
                f"the invocation is {len(payload)} bytes, more than the Kafka message limit of {limit} bytes "
                "([transport.kafka] max_message_bytes)", backend="kafka",
            )

        topic = request_topic(self.options.topic_prefix, function)
        for attempt in (1, 2):
            used = self.producer.producer
            try:
                await self._publish_once(topic, payload, request_id)
                return
            except (KafkaError, OSError) as error:
                # A rejected producer state means the broker did not store the record, so a retry on
                # a new producer cannot run the invocation twice.
                if attempt == 1 and await self.producer.recover(error, used):
                    continue
                self.probe_soon()
                raise TransportUnavailable(
                    f"publishing request {request_id} to Kafka topic {topic} at {self.servers} failed: "
                    f"{describe_error(error)}", backend="kafka",
                ) from error

    async def _publish_once(self, topic: str, payload: bytes, request_id: str) -> None:
        assert self.producer is not None and self._lost is not None
        lost = self._lost
        # send() returns once the record is queued; its future resolves with the broker's
        # acknowledgement. Waiting on it together with ``lost`` makes a publish in flight fail
        # as soon as the monitor finds the cluster gone, instead of after request_timeout_ms.
        acknowledged = await self.producer.send(topic, payload)
        done, _ = await asyncio.wait((acknowledged, lost), timeout=self.options.request_timeout_ms / 1000 + 1,
                                     return_when=asyncio.FIRST_COMPLETED)
        if acknowledged in done:
            acknowledged.result()
            return

        acknowledged.add_done_callback(discard_outcome)
        if lost in done:
            reason = f"the connection to Kafka at {self.servers} was lost while publishing request {request_id}"
        else:
            reason = f"Kafka at {self.servers} did not acknowledge request {request_id} within request_timeout_ms"
            self.probe_soon()
        raise TransportUnavailable(f"{reason}; the invocation may still be delivered and run", backend="kafka")

    async def _sweep_reply_topics(self) -> None:
        """Delete reply topics of grappler processes that are gone, once two sweeps in a row found them idle."""
        suspects: set[str] = set()
        interval = self.options.reply_sweep_interval_ms / 1000
        while not self.closing:
            try:
                suspects = await asyncio.wait_for(self._sweep_once(suspects), max(interval, 30.0))
            except (KafkaError, OSError, asyncio.TimeoutError) as error:
                logger.info("kafka transport: sweeping reply topics failed: %s; next sweep in %gs",
                            describe_error(error), interval)
            await asyncio.sleep(interval * random.uniform(0.8, 1.2))

    async def _sweep_once(self, suspects: set[str]) -> set[str]:
        """Delete the idle reply topics that were already in ``suspects``; return the idle ones to check next time."""
        # The sweep has an admin client of its own, so that a failure in it cannot close the
        # connection the broker monitor probes through.
        admin = self.new_admin(self.options.connection.client_options())
        try:
            await admin.start()
            topics = TopicAdmin(admin, self.options.request_timeout_ms)
            idle = set(await topics.idle_reply_topics(self.options.topic_prefix, REPLY_TOPIC_MIN_AGE, self.address))
            doomed = sorted(idle & suspects)
            if doomed:
                await topics.delete(doomed)
                logger.info("kafka transport: deleted %d reply topics of grappler processes that are gone: %s",
                            len(doomed), ", ".join(doomed))
            return idle - set(doomed)
        finally:
            await close_quietly(admin.close())

    async def close(self) -> None:
        self.closing = True
        if self.replies is not None:
            await close_quietly(self.replies.stop())
            await self._delete_reply_topic()
        await super().close()

    async def _delete_reply_topic(self) -> None:
        assert self.topics is not None
        try:
            await asyncio.wait_for(self.topics.delete([self.address]), CLOSE_TIMEOUT)
        except (KafkaError, OSError, asyncio.TimeoutError) as error:
            logger.warning("kafka transport: deleting reply topic %s failed: %s; the sweep of another grappler "
                           "deletes it later", self.address, describe_error(error))
        else:
            logger.info("kafka transport: deleted reply topic %s", self.address)
