"""Conformance tests for log sink plugins, fed directly and through Boothby's LogShipper."""

from __future__ import annotations

import asyncio
import inspect
import time
from datetime import datetime
from typing import Any, Awaitable, Callable, ClassVar, Iterable, Mapping

import pytest

from ..config import Config
from ..logsink import FunctionLog, LogShipper, LogSink
from ..plugins import Registry
from .contract import covers
from .messages import new_request_id, unique_name
from .registration import SuiteBase, check_registration, get_backend, run_lifecycle_hooks
from .running import run_coroutine, run_then_close, within

LEVELS = ("debug", "info", "warn", "error")

TRICKY_MESSAGES = (
    "plain text",
    "first line\nsecond line\r\nthird line",
    "unicode: żółć 漢字 🙂",
    'quotes "double" \'single\' and a \\ backslash',
    "a tab\there and a bell \x07",
    "",
    "x" * 65536,
)
"""Messages a function can produce that a careless sink might split, escape twice or cut."""


def make_records(function: str, count: int, start: int = 0, request_id: str | None = None) -> list[FunctionLog]:
    """Return ``count`` records numbered from ``start``, cycling through the levels."""
    request_id = request_id or new_request_id()
    now_ms = time.time() * 1000
    return [
        FunctionLog(function, request_id, now_ms + index, LEVELS[index % len(LEVELS)], f"record {index}")
        for index in range(start, start + count)
    ]


def as_comparable(record: Any) -> tuple[str, str, str, str]:
    """Reduce a read-back record (a FunctionLog or a mapping) to (function, request_id, level, message)."""
    fields = record._asdict() if hasattr(record, "_asdict") else dict(record)
    return fields["function"], fields["request_id"], fields["level"], fields["message"]


def timestamp_of(record: Any) -> float | None:
    fields = record._asdict() if hasattr(record, "_asdict") else dict(record)
    return fields.get("timestamp_ms")


def iso_to_ms(text: str) -> float:
    """Convert an ISO 8601 time such as ``2026-12-04T20:39:22.123Z`` to milliseconds since the epoch."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000


class GatedSink(LogSink):
    """A wrapper around a sink whose ``write`` waits until the test opens the gate, like a sink with a slow store."""

    def __init__(self, inner: LogSink) -> None:
        super().__init__(inner.settings)
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    async def start(self) -> None:
        await self.inner.start()

    async def write(self, records: list[FunctionLog]) -> None:
        self.entered.set()
        await self.gate.wait()
        await self.inner.write(records)

    async def close(self) -> None:
        await self.inner.close()


class SinkHarness:
    """The sinks of one test, with the ``read_records`` polling, closed at the end of the test."""

    def __init__(self, suite: "LogSinkConformance", factory: Callable[[], LogSink], seconds: float) -> None:
        self.suite = suite
        self.factory = factory
        self.seconds = seconds
        self.open: list[LogSink] = []

    async def sink(self, start: bool = True) -> LogSink:
        """Create a sink, let the suite prepare it and, unless ``start`` is false, call ``start()``."""
        sink = self.factory()
        self.suite.prepare_sink(sink)
        if start:
            await within(sink.start(), self.seconds, "LogSink.start()")
            self.open.append(sink)
        return sink

    async def close_sink(self, sink: LogSink) -> None:
        if sink in self.open:
            self.open.remove(sink)
        await within(sink.close(), self.seconds, "LogSink.close()")

    async def read(self, sink: LogSink, function: str) -> list[Any]:
        """Return what ``read_records`` finds for ``function``, in the order it was shipped."""
        found = self.suite.read_records(sink)
        if inspect.isawaitable(found):
            found = await within(found, self.seconds, "read_records()")
        return [record for record in found if as_comparable(record)[0] == function]

    async def read_until(self, sink: LogSink, function: str, count: int, seconds: float) -> list[Any]:
        """Poll ``read_records`` until ``count`` records of ``function`` are back, or fail after ``seconds``."""
        deadline = time.monotonic() + seconds
        while True:
            records = await self.read(sink, function)
            if len(records) >= count:
                return records
            if time.monotonic() >= deadline:
                raise AssertionError(f"read_records() returned {len(records)} of {count} records within {seconds:g} s")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        for sink in list(self.open):
            await self.close_sink(sink)


class LogSinkConformance(SuiteBase):
    """Base class of a log sink plugin's conformance tests; subclass it as ``Test...``.

    Set ``log_sink_name`` and ``settings`` and implement ``read_records(sink)``, which returns
    the records shipped so far as ``FunctionLog`` tuples or mappings with the keys
    ``function``, ``request_id``, ``level`` and ``message`` (``timestamp_ms`` is compared when
    present). It may be a coroutine, and may return records of other tests too: the suite
    keeps only its own, by function name.
    """

    log_sink_name: ClassVar[str] = ""
    settings: ClassVar[Mapping[str, Any]] = {}
    time_limit: ClassVar[float] = 60.0
    operation_timeout: ClassVar[float] = 10.0
    read_timeout: ClassVar[float] = 10.0
    """Seconds shipped records may take to become visible to ``read_records``."""

    quiet_period: ClassVar[float] = 0.5

    def prepare_sink(self, sink: LogSink) -> None:
        """Adjust a new sink before ``start()``, for example to point its stream at a buffer."""

    def read_records(self, sink: LogSink) -> Iterable[Any] | Awaitable[Iterable[Any]]:
        """Return every record ``sink`` (or its store) contains so far, oldest first."""
        raise NotImplementedError("implement read_records(sink) to read back what the sink shipped")

    def make_destination_slow(self, sink: LogSink, seconds: float) -> bool:
        """Make each write of ``sink`` to its store take ``seconds``, blocking as a full pipe or slow disk does.

        Return True when done. The default returns False, and the responsiveness test then
        runs against the normal store only.
        """
        return False

    # Fixtures.

    @pytest.fixture
    def log_sink_settings(self) -> Mapping[str, Any]:
        return dict(self.settings)

    @pytest.fixture
    def log_sink_factory(self, registry: Registry, log_sink_settings: Mapping[str, Any]) -> Callable[[], LogSink]:
        backend = get_backend(registry, "log_sink", self.log_sink_name)
        return lambda: backend.factory(log_sink_settings)

    def run_scenario(self, factory: Callable[[], LogSink], scenario: Callable[[SinkHarness], Awaitable[None]]) -> None:
        async def main() -> None:
            harness = SinkHarness(self, factory, self.operation_timeout)
            await run_then_close(scenario(harness), harness.close)

        run_coroutine(main(), self.time_limit, self.use_uvloop)

    # Registration and lifecycle.

    @covers("hookspecs.boothby_register_log_sinks", "LogSink.name")
    def test_registered_under_name(self, registry):
        check_registration(registry, "log_sink", self.log_sink_name, LogSink)

    @covers("hookspecs.boothby_startup", "hookspecs.boothby_shutdown")
    def test_lifecycle_hooks_accept_settings(self, registry, log_sink_settings):
        config = Config(log_sinks=(self.log_sink_name,), log_sink_settings={self.log_sink_name: log_sink_settings})

        async def main() -> None:
            run_lifecycle_hooks(registry, config, ("deflector",))

        run_coroutine(main(), self.time_limit, self.use_uvloop)

    # Records.

    @covers("LogSink.start", "LogSink.write", "LogSink.close")
    def test_records_arrive_intact(self, log_sink_factory):
        function = unique_name()
        request_id = new_request_id()
        now_ms = time.time() * 1000 + 0.25
        records = [
            FunctionLog(function, request_id, now_ms + index, LEVELS[index % len(LEVELS)], message)
            for index, message in enumerate(TRICKY_MESSAGES)
        ]

        async def scenario(h: SinkHarness) -> None:
            sink = await h.sink()
            await within(sink.write(records), self.operation_timeout, "LogSink.write()")
            await h.close_sink(sink)
            shipped = await h.read_until(sink, function, len(records), self.read_timeout)

            assert [as_comparable(record) for record in shipped] == [as_comparable(record) for record in records]
            for sent, back in zip(records, shipped):
                stamp = timestamp_of(back)
                if stamp is not None:
                    assert abs(stamp - sent.timestamp_ms) < 1.0, (
                        f"timestamp_ms {sent.timestamp_ms} came back as {stamp}; milliseconds must survive"
                    )

        self.run_scenario(log_sink_factory, scenario)

    @covers("LogSink.write")
    def test_order_within_and_across_batches(self, log_sink_factory):
        function = unique_name()
        batches = [make_records(function, 40, start) for start in (0, 40, 80)]

        async def scenario(h: SinkHarness) -> None:
            sink = await h.sink()
            for batch in batches:
                await within(sink.write(batch), self.operation_timeout, "LogSink.write()")
            expected = [as_comparable(record) for batch in batches for record in batch]
            shipped = await h.read_until(sink, function, len(expected), self.read_timeout)
            assert [as_comparable(record) for record in shipped] == expected

        self.run_scenario(log_sink_factory, scenario)

    @covers("LogSink.start", "LogSink.write", "LogSink.close")
    def test_order_through_shipper(self, log_sink_factory):
        function = unique_name()
        shipments = [make_records(function, 45, start) for start in (0, 45, 90)]

        async def scenario(h: SinkHarness) -> None:
            sink = await h.sink(start=False)
            shipper = LogShipper([sink], capacity=1000, batch_size=20)
            await within(shipper.start(), self.operation_timeout, "LogShipper.start()")
            for records in shipments:
                shipper.ship(records)
                await asyncio.sleep(0.01)
            expected = [as_comparable(record) for records in shipments for record in records]
            shipped = await h.read_until(sink, function, len(expected), self.read_timeout)
            await within(shipper.close(), self.operation_timeout, "LogShipper.close()")

            assert [as_comparable(record) for record in shipped] == expected
            assert shipper.stats()[sink.name]["failed"] == 0, "write() raised; see the log for the traceback"

        self.run_scenario(log_sink_factory, scenario)

    # Back-pressure.

    @covers("LogSink.write")
    def test_slow_write_never_blocks_ship(self, log_sink_factory):
        function = unique_name()
        records = make_records(function, 31)
        capacity = 10

        async def scenario(h: SinkHarness) -> None:
            gated = GatedSink(await h.sink(start=False))
            shipper = LogShipper([gated], capacity=capacity, batch_size=100)
            await within(shipper.start(), self.operation_timeout, "LogShipper.start()")
            shipper.ship(records[:1])
            await within(gated.entered.wait(), self.operation_timeout, "the shipper's first write()")

            began = time.perf_counter()
            for record in records[1:]:
                shipper.ship([record])
            elapsed = time.perf_counter() - began
            stats = shipper.stats()[gated.name]
            assert elapsed < 0.25, f"30 ship() calls took {elapsed:.3f} s while write() was busy"
            assert stats["buffered"] == capacity
            assert stats["dropped"] == len(records) - 1 - capacity

            gated.gate.set()
            buffered = [as_comparable(record) for record in records[:1 + capacity]]
            shipped = await h.read_until(gated.inner, function, len(buffered), self.read_timeout)
            await within(shipper.close(), self.operation_timeout, "LogShipper.close()")
            await asyncio.sleep(self.quiet_period)
            shipped = await h.read(gated.inner, function)
            assert [as_comparable(record) for record in shipped] == buffered, (
                "the shipped records differ from the ones that fitted the buffer: dropped ones arrived, or buffered ones were lost"
            )

        self.run_scenario(log_sink_factory, scenario)

    @covers("LogSink.write")
    def test_write_keeps_event_loop_responsive(self, log_sink_factory):
        function = unique_name()
        records = make_records(function, 500)
        delay = 0.5

        async def scenario(h: SinkHarness) -> None:
            sink = await h.sink()
            slowed = self.make_destination_slow(sink, delay)
            ticks = [time.perf_counter()]
            stop = asyncio.Event()

            async def tick() -> None:
                while not stop.is_set():
                    await asyncio.sleep(0.005)
                    ticks.append(time.perf_counter())

            ticker = asyncio.create_task(tick())
            await asyncio.sleep(0.02)
            began = time.perf_counter()
            await within(sink.write(records), self.operation_timeout, "LogSink.write()")
            # Taken before yielding, so a write that blocked the loop shows as one long gap.
            ticks.append(time.perf_counter())
            took = ticks[-1] - began
            stop.set()
            await ticker
            gaps = [later - earlier for earlier, later in zip(ticks, ticks[1:])]

            if slowed:
                assert took >= delay * 0.9, f"write() took {took:.3f} s although the store was slowed to {delay} s"
            assert max(gaps, default=0.0) < delay / 2, (
                f"the event loop stalled for {max(gaps):.3f} s during write(); do blocking I/O in a thread "
                "or with an asyncio client, so a slow store never delays replies"
            )

        self.run_scenario(log_sink_factory, scenario)

    # Shutdown.

    @covers("LogSink.close")
    def test_close_flushes_written_records(self, log_sink_factory):
        function = unique_name()
        records = make_records(function, 25)

        async def scenario(h: SinkHarness) -> None:
            sink = await h.sink()
            await within(sink.write(records), self.operation_timeout, "LogSink.write()")
            await h.close_sink(sink)
            shipped = await h.read_until(sink, function, len(records), self.read_timeout)
            assert [as_comparable(record) for record in shipped] == [as_comparable(record) for record in records]

        self.run_scenario(log_sink_factory, scenario)

    @covers("LogSink.close")
    def test_shipper_close_flushes_buffer(self, log_sink_factory):
        function = unique_name()
        records = make_records(function, 100)

        async def scenario(h: SinkHarness) -> None:
            sink = await h.sink(start=False)
            shipper = LogShipper([sink], capacity=1000, batch_size=10)
            await within(shipper.start(), self.operation_timeout, "LogShipper.start()")
            shipper.ship(records)
            await within(shipper.close(), self.operation_timeout, "LogShipper.close()")

            stats = shipper.stats()[sink.name]
            assert stats["dropped"] == 0, f"records were dropped at close: {stats}"
            assert stats["failed"] == 0, f"write() raised at close: {stats}"
            shipped = await h.read_until(sink, function, len(records), self.read_timeout)
            assert [as_comparable(record) for record in shipped] == [as_comparable(record) for record in records]

        self.run_scenario(log_sink_factory, scenario)
