"""The janitor every deflector runs: hands the unstarted entries of dead deflectors back to the queue."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import TYPE_CHECKING

import redis.exceptions

from .connection import CONNECTION_ERRORS
from .keys import GROUP

if TYPE_CHECKING:
    from .queue import WorkQueue

logger = logging.getLogger(__name__)

REAP_BATCH = 100
"""Entries moved per script call, so that no single call blocks Redis for long."""


class Janitor:
    """Every half heartbeat timeout, cleans each function's consumer group.

    A consumer whose heartbeat key has expired is dead: its unstarted entries move to the tail of
    the stream and the consumer leaves the group. This deflector's own entries that it read but
    never received (a connection broke mid-reply) move back too, and acknowledgements that failed
    in the background are sent again.
    """

    def __init__(self, queue: WorkQueue) -> None:
        self.queue = queue
        self.client = queue.client
        self.keys = queue.keys
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="redis-janitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        interval = self.queue.settings.heartbeat_timeout / 2
        while True:
            # Jitter keeps the janitors of several deflectors from running in step.
            await asyncio.sleep(interval * random.uniform(0.75, 1.25))
            for function in self.queue.functions:
                try:
                    await self.clean(function)
                except CONNECTION_ERRORS as error:
                    logger.debug("redis transport: janitor skipped %s because Redis did not respond: %s", function, error)
                except redis.exceptions.ResponseError as error:
                    if "NOGROUP" not in str(error) and "no such key" not in str(error):
                        logger.warning("redis transport: janitor failed on %s: %s", function, error)

    async def clean(self, function: str) -> None:
        """Clean the consumer group of ``function`` once."""
        stream = self.keys.stream(function)
        await self.queue.confirm_acknowledgements(stream)
        consumers = await self.client.xinfo_consumers(stream, GROUP)
        for consumer in consumers:
            name = consumer["name"]
            name = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
            if name != self.queue.consumer:
                await self.reap(stream, name)
        await self._requeue_lost_reads(stream)

    async def reap(self, stream: str, consumer: str) -> int:
        """Requeue the entries of ``consumer`` and remove it from the group, if its heartbeat key is gone.

        Returns the number of entries moved back to the stream.
        """
        moved = gone = 0
        removed = False
        started = time.monotonic()
        while not removed:
            result = await self.queue.reap_script(keys=[stream, self.keys.heartbeat(consumer)],
                                                  args=[GROUP, consumer, REAP_BATCH])
            if result is None:
                return moved
            moved += int(result[0])
            gone += int(result[1])
            removed = bool(result[2])
        if consumer == self.queue.consumer:
            return moved
        if moved or gone:
            logger.warning("redis transport: deflector consumer %s sent no heartbeat for %gs; moved %d invocations it had "
                           "not started back to %s, acknowledged %d already trimmed, and removed it from the group in %.1f ms",
                           consumer, self.queue.settings.heartbeat_timeout, moved, stream, gone,
                           (time.monotonic() - started) * 1000)
        else:
            logger.info("redis transport: removed consumer %s, which held nothing and sent no heartbeat, from %s",
                        consumer, stream)
        return moved

    async def _requeue_lost_reads(self, stream: str) -> None:
        idle_ms = int(self.queue.settings.heartbeat_timeout * 1000)
        pending = await self.client.xpending_range(stream, GROUP, "-", "+", REAP_BATCH,
                                                   consumername=self.queue.consumer, idle=idle_ms)
        lost = [item["message_id"] for item in pending if not self.queue.is_tracked(item["message_id"])]
        if not lost:
            return
        moved = await self.queue.requeue_script(keys=[stream], args=[GROUP, self.queue.consumer, *lost])
        logger.warning("redis transport: moved %d entries of %s that consumer %s read but never received back to the queue",
                       moved, stream, self.queue.consumer)
