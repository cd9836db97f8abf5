"""The log sink plugin contract and the bounded shipper that feeds sinks off the reply path."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any, ClassVar, Mapping, NamedTuple

logger = logging.getLogger(__name__)


class FunctionLog(NamedTuple):
    """One console call of a function."""

    function: str
    request_id: str
    timestamp_ms: float
    level: str
    message: str


class LogSink:
    """Base class of log sink plugins.

    The deflector calls ``start`` once, then ``write`` with batches of records in the order the
    functions produced them, never two ``write`` calls at once on one sink, then ``close``.
    ``write`` may take its time: records wait in a bounded buffer meanwhile and replies are never
    delayed. An exception from ``write`` drops that batch; it is logged and counted.
    """

    name: ClassVar[str] = ""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = settings

    async def start(self) -> None:
        """Connect or open files. Called once before the first ``write``."""

    async def write(self, records: list[FunctionLog]) -> None:
        """Ship one batch of records."""
        raise NotImplementedError

    async def close(self) -> None:
        """Flush and release resources. Called once at shutdown."""


class _SinkQueue:
    """One sink's bounded buffer and the task that drains it."""

    def __init__(self, sink: LogSink, capacity: int, batch_size: int, linger: float) -> None:
        self.sink = sink
        self.linger = linger
        self.capacity = capacity
        self.batch_size = batch_size
        self.records: deque[FunctionLog] = deque()
        self.ready = asyncio.Event()
        self.dropped = 0
        self.failed = 0
        self.shipped = 0
        self.writing = False
        self.task: asyncio.Task[None] | None = None

    def put(self, records: list[FunctionLog]) -> None:
        room = self.capacity - len(self.records)
        if room < len(records):
            self.dropped += len(records) - max(room, 0)
            records = records[: max(room, 0)]
        self.records.extend(records)
        if records:
            self.ready.set()

    async def run(self) -> None:
        while True:
            await self.ready.wait()
            # Let records gather for a moment: under load one write then carries many records.
            await asyncio.sleep(self.linger)
            self.ready.clear()
            while self.records:
                count = min(len(self.records), self.batch_size)
                batch = [self.records.popleft() for _ in range(count)]
                self.writing = True
                try:
                    await self.sink.write(batch)
                    self.shipped += len(batch)
                except asyncio.CancelledError:
                    # close() cancels a write that outlives its grace period: count its batch too.
                    self.dropped += len(batch)
                    raise
                except Exception as error:
                    self.failed += len(batch)
                    logger.error("log sink %r failed to write %d records; they are dropped: %s",
                                 self.sink.name, len(batch), error)
                    logger.debug("traceback of the failed write to log sink %r", self.sink.name, exc_info=error)
                finally:
                    self.writing = False


class LogShipper:
    """Fans function logs out to every configured sink without ever blocking the caller.

    Each sink has its own buffer of at most ``capacity`` records, so one slow sink does not
    hold back another. A sink receives records ``linger`` seconds after the first one of a
    batch arrives, at most ``batch_size`` at a time. Records that do not fit are dropped and counted; the counts are logged
    every ``report_interval`` seconds while drops happen, and at shutdown.
    """

    def __init__(self, sinks: list[LogSink], capacity: int = 10000, batch_size: int = 500,
                 report_interval: float = 10.0, linger: float = 0.02) -> None:
        self.queues = [_SinkQueue(sink, capacity, batch_size, linger) for sink in sinks]
        self.report_interval = report_interval
        self._last_report = time.monotonic()
        self._reported: dict[str, tuple[int, int]] = {}

    async def start(self) -> None:
        for queue in self.queues:
            await queue.sink.start()
            queue.task = asyncio.create_task(queue.run(), name=f"log-sink-{queue.sink.name}")

    def ship(self, records: list[FunctionLog]) -> None:
        """Queue records for every sink; returns at once."""
        if not records:
            return
        for queue in self.queues:
            queue.put(records)
        now = time.monotonic()
        if now - self._last_report >= self.report_interval:
            self._last_report = now
            self.report_drops()

    def stats(self) -> dict[str, dict[str, int]]:
        """Return per-sink counts: buffered, shipped, dropped (buffer full) and failed (write raised)."""
        return {
            queue.sink.name: {
                "buffered": len(queue.records),
                "shipped": queue.shipped,
                "dropped": queue.dropped,
                "failed": queue.failed,
            }
            for queue in self.queues
        }

    def report_drops(self) -> None:
        for queue in self.queues:
            counts = (queue.dropped, queue.failed)
            if counts != self._reported.get(queue.sink.name, (0, 0)):
                self._reported[queue.sink.name] = counts
                logger.warning(
                    "log sink %r: %d records dropped because its buffer of %d was full, %d lost to write errors so far",
                    queue.sink.name, queue.dropped, queue.capacity, queue.failed,
                )

    async def close(self, timeout: float = 5.0) -> None:
        """Give each sink up to ``timeout`` seconds to drain its buffer, then close it."""
        deadline = time.monotonic() + timeout
        for queue in self.queues:
            while (queue.records or queue.writing) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            if queue.task:
                queue.task.cancel()
                try:
                    await queue.task
                except asyncio.CancelledError:
                    pass
            queue.dropped += len(queue.records)
            queue.records.clear()
            try:
                await queue.sink.close()
            except Exception:
                logger.exception("log sink %r failed to close", queue.sink.name)
        self.report_drops()
