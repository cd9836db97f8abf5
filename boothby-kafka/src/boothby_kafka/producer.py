"""An idempotent aiokafka producer that replaces itself when the broker rejects its producer state."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    KafkaError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    UnknownProducerId,
)

from .topics import describe_error

logger = logging.getLogger(__name__)

UNRECOVERABLE = (OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch, InvalidProducerIdMapping,
                 ProducerFenced)
"""Errors after which an idempotent aiokafka producer fails every later send to the partition.

aiokafka 0.14 does not reset its sequence numbers or bump its epoch after them (see
https://github.com/aio-libs/aiokafka/issues/1017), which happens when batches expire while a
broker restarts. A new producer gets a new producer id and starts its sequences from zero.
"""

_STOP_TIMEOUT = 10.0


class ReplaceableProducer:
    """Holds one producer made by ``create`` and swaps in a new one after an ``UNRECOVERABLE`` error."""

    def __init__(self, create: Callable[[], AIOKafkaProducer], label: str) -> None:
        self.create = create
        self.label = label
        self.producer: AIOKafkaProducer | None = None
        self.replacements = 0
        self._replacing: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        producer = self.create()
        try:
            await producer.start()
        except BaseException:
            await _stop(producer, self.label)
            raise
        self.producer = producer

    async def send(self, topic: str, value: bytes, **options: Any) -> asyncio.Future[Any]:
        """Queue one record and return the future of its acknowledgement; see ``AIOKafkaProducer.send``."""
        assert self.producer is not None, "start() first"
        return await self.producer.send(topic, value=value, **options)

    async def recover(self, error: BaseException, used: AIOKafkaProducer | None) -> bool:
        """Replace the producer when ``error`` left it unusable; return whether a new one is ready to retry on.

        ``used`` is the producer the failed send went through, so that many sends failing at
        once replace it only once.
        """
        if not isinstance(error, UNRECOVERABLE):
            return False
        if self.producer is not used:
            return self.producer is not None
        if self._replacing is None or self._replacing.done():
            logger.warning("kafka %s: the broker rejected the producer's state (%s); replacing the producer",
                           self.label, describe_error(error))
            self._replacing = asyncio.create_task(self._replace(), name=f"kafka-replace-producer-{self.label}")
        await asyncio.shield(self._replacing)
        return self.producer is not used

    async def _replace(self) -> None:
        old = self.producer
        try:
            await self.start()
        except (KafkaError, OSError) as error:
            logger.warning("kafka %s: starting a new producer failed: %s; the next failed send tries again",
                           self.label, describe_error(error))
            return
        self.replacements += 1
        logger.warning("kafka %s: replaced the producer (%d replacements so far)", self.label, self.replacements)
        if old is not None:
            # Stopping flushes the old producer's queue, whose sends fail with the same error.
            task = asyncio.create_task(_stop(old, self.label))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    async def stop(self) -> None:
        if self._replacing is not None and not self._replacing.done():
            self._replacing.cancel()
        if self.producer is not None:
            await _stop(self.producer, self.label)
        if self._retiring:
            await asyncio.wait(set(self._retiring))


async def _stop(producer: AIOKafkaProducer, label: str) -> None:
    try:
        await asyncio.wait_for(producer.stop(), _STOP_TIMEOUT)
    except (KafkaError, OSError, asyncio.TimeoutError) as error:
        logger.warning("kafka %s: stopping a producer failed: %s", label, describe_error(error))
