"""The grappler side's reply channel: a topic of its own, read by a consumer in a group of its own.

The group has one member, this process. Kafka shows the group as empty once the process is gone
(after ``session_timeout_ms``), which is how the sweep finds reply topics to delete. The group
never commits: the consumer keeps its position in memory and seeks back to it when the group
reassigns the partition after a broker restart.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from .settings import TransportSettings
from .topics import describe_error

logger = logging.getLogger(__name__)

FETCH_WAIT_MS = 1000
_ERROR_BACKOFF = 0.5


class _KeepPosition(ConsumerRebalanceListener):
    def __init__(self, channel: ReplyChannel) -> None:
        self.channel = channel

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        pass

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.channel.partitions_assigned(set(assigned))


class ReplyChannel:
    """Reads every record of one reply topic and passes its value to ``on_reply``."""

    def __init__(self, topic: str, settings: TransportSettings, client_options: dict[str, Any], client_id: str,
                 on_reply: Callable[[bytes], None]) -> None:
        self.topic = topic
        self.on_reply = on_reply
        self.consumer = AIOKafkaConsumer(
            group_id=topic,
            client_id=client_id,
            enable_auto_commit=False,
            # The topic is new and empty when the group first joins, so "earliest" misses nothing
            # even if a reply lands before the partition is assigned.
            auto_offset_reset="earliest",
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=settings.heartbeat_interval_ms,
            request_timeout_ms=max(40_000, settings.session_timeout_ms + 10_000),
            **client_options,
        )
        self.positions: dict[TopicPartition, int] = {}
        self.assigned = asyncio.Event()
        self.received = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self, assignment_timeout: float) -> None:
        """Join the group and start reading; wait up to ``assignment_timeout`` seconds for the partition."""
        await self.consumer.start()
        self.consumer.subscribe([self.topic], listener=_KeepPosition(self))
        self._task = asyncio.create_task(self._read(), name=f"kafka-replies-{self.topic}")
        try:
            await asyncio.wait_for(self.assigned.wait(), assignment_timeout)
        except asyncio.TimeoutError:
            logger.warning("kafka transport: reply topic %s not assigned within %gs; replies are read once it is",
                           self.topic, assignment_timeout)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self.consumer.stop()

    def partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        for partition in assigned:
            position = self.positions.get(partition)
            if position is not None:
                self.consumer.seek(partition, position)
                logger.info("kafka transport: reply topic %s reassigned; reading on from offset %d",
                            self.topic, position)
        if assigned:
            self.assigned.set()

    async def _read(self) -> None:
        while True:
            try:
                batches = await self.consumer.getmany(timeout_ms=FETCH_WAIT_MS)
            except KafkaError as error:
                logger.warning("kafka transport: reading reply topic %s failed: %s; retrying in %gs",
                               self.topic, describe_error(error), _ERROR_BACKOFF)
                await asyncio.sleep(_ERROR_BACKOFF)
                continue
            for partition, records in batches.items():
                self.positions[partition] = records[-1].offset + 1
                self.received += len(records)
                for record in records:
                    self.on_reply(record.value or b"")
