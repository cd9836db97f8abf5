"""Conformance tests for runtime plugins: real worker processes driven by Boothby's own FunctionPool.

The plugin author writes one small function per scenario in the runtime's language and maps
the scenario names to their folders. ``SCENARIO_BEHAVIOUR`` states what each must do.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, ClassVar, Iterator, Mapping, Sequence

import pytest

from ..config import Config, FunctionConfig
from ..errors import WorkerStartError
from ..plugins import Registry
from ..pool import FunctionPool
from ..runtime import Runtime, WorkerSpec
from .contract import covers
from .messages import encode_invocation_bare, invocation_record
from .registration import SuiteBase, check_registration, get_backend, run_lifecycle_hooks
from .running import run_coroutine, run_then_close, wait_until, within

THROWN_MESSAGE = "boothby conformance: thrown on purpose"
BROKEN_MESSAGE = "boothby conformance: broken on purpose"
CRASH_EXIT_CODE = 3
COOKIES = ("a=1; Path=/", "b=2; Path=/; HttpOnly")

SCENARIO_BEHAVIOUR = {
    "echo": "status 200, header content-type: application/octet-stream, and the request body byte for byte "
            "as the response body; a request without a body gets a response without a body",
    "status": "the status given in the query parameter code, headers x-multi: one and x-multi: two in that "
              f"order, one set-cookie per cookie {COOKIES[0]!r} and {COOKIES[1]!r}, and the body 'status <code>'",
    "throws": f"the handler throws (or rejects, or returns its language's error) with the message {THROWN_MESSAGE!r}",
    "hang": "the handler never completes",
    "logs": "four console records in this order, yielding between them where the language can: debug "
            "'debug <tag>', info 'info <tag>', warn 'warn <tag>', error 'error <tag>\\nsecond line <tag>', "
            "where tag is the query parameter tag; then status 200 with the tag as body",
    "crash": f"the worker process exits at once with exit code {CRASH_EXIT_CODE} without answering",
    "pid": "status 200 and the worker's process id in decimal as the body",
    "broken": f"loading the function fails with an error whose message contains {BROKEN_MESSAGE!r}",
}
"""The behaviour each scenario function must implement, by scenario name."""

SCENARIOS = tuple(SCENARIO_BEHAVIOUR)


@dataclass(frozen=True)
class Scenario:
    """The code of one scenario function: its source folder and its handler."""

    source: Path
    handler: str = "index.handler"


def scenarios_in(folder: str | Path, handler: str = "index.handler") -> dict[str, Scenario]:
    """Map every scenario name to the subfolder of ``folder`` with the same name."""
    return {name: Scenario(Path(folder) / name, handler) for name in SCENARIOS}


def expected_logs(tag: str) -> list[tuple[str, str]]:
    return [
        ("debug", f"debug {tag}"),
        ("info", f"info {tag}"),
        ("warn", f"warn {tag}"),
        ("error", f"error {tag}\nsecond line {tag}"),
    ]


class PoolHarness:
    """The FunctionPools of one test's scenario functions, stopped at the end of the test."""

    def __init__(self, runtime_factory: Callable[[], Runtime], runtime_name: str, scenarios: Mapping[str, Scenario],
                 work_dir: Path, start_timeout: float, memory_mb: int) -> None:
        self.runtime_factory = runtime_factory
        self.runtime_name = runtime_name
        self.scenarios = scenarios
        self.work_dir = work_dir
        self.start_timeout = start_timeout
        self.memory_mb = memory_mb
        self.pools: list[FunctionPool] = []

    def function(self, scenario: str, concurrency: int = 1) -> FunctionConfig:
        code = self.scenarios[scenario]
        return FunctionConfig(
            name=f"{scenario}-{uuid.uuid4().hex[:6]}", source=Path(code.source), handler=code.handler,
            runtime=self.runtime_name, timeout=30.0, workers=1, concurrency=concurrency, memory_mb=self.memory_mb,
        )

    def create_pool(self, scenario: str, concurrency: int = 1) -> FunctionPool:
        pool = FunctionPool(self.function(scenario, concurrency), self.runtime_factory(), self.work_dir,
                            start_timeout=self.start_timeout)
        self.pools.append(pool)
        return pool

    async def pool(self, scenario: str, concurrency: int = 1) -> FunctionPool:
        """Start a pool of one worker for ``scenario`` and wait until that worker is ready."""
        pool = self.create_pool(scenario, concurrency)
        await within(pool.start(), self.start_timeout + 5, f"starting a worker of the {scenario} scenario")
        assert pool.failure is None, f"the worker of the {scenario} scenario failed to start: {pool.failure}"
        await wait_until(lambda: ready_worker(pool) is not None, self.start_timeout, f"a ready {scenario} worker")
        return pool

    async def invoke(self, pool: FunctionPool, *, body: bytes | None = None, query: Sequence[tuple[str, str]] = (),
                     headers: Sequence[tuple[str, str]] = (), seconds: float = 10.0) -> dict[str, Any]:
        """Send one invocation through the pool, as the deflector does, and return the ``WorkerResult`` record."""
        deadline = time.time() + seconds
        record = invocation_record(pool.function.name, body=body, query=query, headers=headers, deadline=deadline)
        return await within(pool.invoke(encode_invocation_bare(record), record["id"], deadline), seconds + 5,
                            f"FunctionPool.invoke() of {pool.function.name}")

    async def close(self) -> None:
        for pool in self.pools:
            await within(pool.stop(), 15, f"stopping the pool of {pool.function.name}")


def ready_worker(pool: FunctionPool) -> Any:
    """Return a live worker with an open connection, or None."""
    return next((worker for worker in pool.workers if worker.alive and worker.connection is not None), None)


def header_values(result: Mapping[str, Any], name: str) -> list[str]:
    return [header["value"] for header in result["headers"] if header["name"].lower() == name]


class RuntimeConformance(SuiteBase):
    """Base class of a runtime plugin's conformance tests; subclass it as ``Test...``.

    Set ``runtime_name``, ``settings`` and ``scenarios``, a mapping from every name in
    ``SCENARIOS`` to a ``Scenario`` (or a folder, called with ``handler``). ``scenarios_in()``
    builds it from one folder per scenario.
    """

    runtime_name: ClassVar[str] = ""
    settings: ClassVar[Mapping[str, Any]] = {}
    scenarios: ClassVar[Mapping[str, Scenario | str | Path]] = {}
    handler: ClassVar[str] = "index.handler"
    """Handler of scenarios given as a bare folder."""

    start_timeout: ClassVar[float] = 20.0
    """Seconds a worker may take to report readiness."""

    memory_mb: ClassVar[int] = 256
    """Memory limit of the scenario functions; the pool kills workers above it."""

    time_limit: ClassVar[float] = 90.0

    # Fixtures.

    @pytest.fixture
    def runtime_settings(self) -> Mapping[str, Any]:
        return dict(self.settings)

    @pytest.fixture
    def runtime_factory(self, registry: Registry, runtime_settings: Mapping[str, Any]) -> Callable[[], Runtime]:
        backend = get_backend(registry, "runtime", self.runtime_name)
        return lambda: backend.factory(runtime_settings)

    @pytest.fixture
    def runtime_scenarios(self) -> dict[str, Scenario]:
        missing = [name for name in SCENARIOS if name not in self.scenarios]
        if missing:
            pytest.fail(f"scenarios has no function for {', '.join(missing)}; map every name in "
                        "boothby.testing.SCENARIOS to a folder (see SCENARIO_BEHAVIOUR for what each must do)")
        resolved = {}
        for name in SCENARIOS:
            value = self.scenarios[name]
            scenario = value if isinstance(value, Scenario) else Scenario(Path(value), self.handler)
            if not Path(scenario.source).exists():
                pytest.fail(f"the source of scenario {name!r} does not exist: {scenario.source}")
            resolved[name] = scenario
        return resolved

    @pytest.fixture
    def work_dir(self) -> Iterator[Path]:
        # Worker sockets live below it and unix socket paths are limited to about 100 bytes,
        # so this is a short folder in the temp directory instead of pytest's tmp_path.
        directory = Path(tempfile.mkdtemp(prefix="bbc-"))
        yield directory
        shutil.rmtree(directory, ignore_errors=True)

    @pytest.fixture
    def pool_harness(self, runtime_factory, runtime_scenarios, work_dir) -> PoolHarness:
        return PoolHarness(runtime_factory, self.runtime_name, runtime_scenarios, work_dir, self.start_timeout,
                           self.memory_mb)

    def run_scenario(self, harness: PoolHarness, scenario: Callable[[PoolHarness], Awaitable[None]]) -> None:
        async def main() -> None:
            await run_then_close(scenario(harness), harness.close)

        run_coroutine(main(), self.time_limit, self.use_uvloop)

    # Registration and lifecycle.

    @covers("hookspecs.boothby_register_runtimes", "Runtime.name")
    def test_registered_under_name(self, registry):
        check_registration(registry, "runtime", self.runtime_name, Runtime)

    @covers("hookspecs.boothby_startup", "hookspecs.boothby_shutdown")
    def test_lifecycle_hooks_accept_settings(self, registry, runtime_settings, pool_harness):
        config = Config(functions={"echo": pool_harness.function("echo")},
                        runtime_settings={self.runtime_name: runtime_settings})

        async def main() -> None:
            run_lifecycle_hooks(registry, config, ("deflector",))

        run_coroutine(main(), self.time_limit, self.use_uvloop)

    @covers("Runtime.check", "Runtime.prepare", "Runtime.worker_spec")
    def test_worker_spec_shape(self, runtime_factory, pool_harness, work_dir):
        runtime = runtime_factory()
        runtime.check()
        function = pool_harness.function("echo")
        runtime_dir = work_dir / "runtime"
        runtime_dir.mkdir()
        runtime.prepare(function, runtime_dir)
        spec = runtime.worker_spec(function, work_dir / "code")

        assert isinstance(spec, WorkerSpec), f"worker_spec() must return a WorkerSpec, got {spec!r}"
        assert spec.argv, "worker_spec() returned an empty argv"
        assert all(isinstance(part, str) for part in spec.argv), f"argv must contain strings only: {spec.argv!r}"
        assert all(isinstance(key, str) and isinstance(value, str) for key, value in spec.env.items()), (
            f"env must map strings to strings: {spec.env!r}"
        )

    # Invocations and results.

    @covers("Runtime.worker_spec", "Runtime.prepare")
    def test_pool_process_runs_function(self, pool_harness):
        async def scenario(h: PoolHarness) -> None:
            pool = await h.pool("pid")
            worker = ready_worker(pool)
            first = await h.invoke(pool)
            second = await h.invoke(pool)

            assert first["status"] == 200, f"pid scenario answered {first['status']}: {first['body']!r}"
            assert first["body"] == str(worker.pid).encode(), (
                f"the function runs in process {first['body']!r}, not in the worker process {worker.pid} the pool "
                "started; the pool could not kill it at a deadline"
            )
            assert second["body"] == first["body"], "a second invocation ran in another process; workers must be reused"

        self.run_scenario(pool_harness, scenario)

    @covers("Runtime.worker_spec")
    @pytest.mark.parametrize("code", [201, 404])
    def test_status_and_repeated_headers(self, pool_harness, code):
        async def scenario(h: PoolHarness) -> None:
            pool = await h.pool("status")
            result = await h.invoke(pool, query=[("code", str(code))])

            assert result["error"] is None, f"the status scenario failed: {result['error']}"
            assert result["status"] == code
            assert header_values(result, "x-multi") == ["one", "two"]
            assert header_values(result, "set-cookie") == list(COOKIES)
            assert result["body"] == f"status {code}".encode()

        self.run_scenario(pool_harness, scenario)

    @covers("Runtime.worker_spec")
    def test_binary_body_byte_for_byte(self, pool_harness):
        body = bytes(range(256)) * 64 + b"\xc3\x28\xff\x00"

        async def scenario(h: PoolHarness) -> None:
            pool = await h.pool("echo")
            result = await h.invoke(pool, body=body, headers=[("content-type", "application/octet-stream")])

            assert result["error"] is None, f"the echo scenario failed: {result['error']}"
            assert result["status"] == 200
            assert header_values(result, "content-type") == ["application/octet-stream"]
            assert result["body"] == body, f"expected {len(body)} bytes back, got {len(result['body'] or b'')}"

        self.run_scenario(pool_harness, scenario)

    @covers("Runtime.worker_spec")
    def test_no_body_differs_from_empty_body(self, pool_harness):
        async def scenario(h: PoolHarness) -> None:
            pool = await h.pool("echo")
            without = await h.invoke(pool, body=None)
            empty = await h.invoke(pool, body=b"", headers=[("content-type", "application/octet-stream")])

            assert without["status"] == 200
            assert empty["status"] == 200
            assert without["body"] is None, f"a request without a body got the body {without['body']!r}"
            assert empty["body"] == b"", f"a request with an empty body got the body {empty['body']!r}"

        self.run_scenario(pool_harness, scenario)

    @covers("Runtime.worker_spec")
    def test_handler_error_reported(self, pool_harness):
        async def scenario(h: PoolHarness) -> None:
            pool = await h.pool("throws")
            worker = ready_worker(pool)
            result = await h.invoke(pool)
            error = result["error"]

            assert isinstance(error, dict), (
                f"a thrown error must come back as WorkerResult.error, got status {result['status']} and error {error!r}"
            )
            assert THROWN_MESSAGE in error["message"]
            assert error["type"], "WorkerResult.error.type is empty"
            assert all(isinstance(line, str) for line in error["trace"])
            again = await h.invoke(pool)
            assert isinstance(again["error"], dict)
            assert ready_worker(pool) is worker, "a handler error must not replace the worker"

        self.run_scenario(pool_harness, scenario)

    @covers("Runtime.worker_spec")
    def test_logs_captured_per_invocation(self, pool_harness):
        async def scenario(h: PoolHarness) -> None:
            pool = await h.pool("logs", concurrency=2)
            started_ms = time.time() * 1000
            results = await asyncio.gather(*(h.invoke(pool, query=[("tag", tag)]) for tag in ("first", "second")))
            finished_ms = time.time() * 1000

            for tag, result in zip(("first", "second"), results):
                assert result["error"] is None, f"the logs scenario failed: {result['error']}"
                records = [(record["level"], record["message"]) for record in result["logs"]]
                assert records == expected_logs(tag), f"invocation {tag!r} captured {records}"
                assert result["logs_dropped"] == 0
                stamps = [record["timestamp_ms"] for record in result["logs"]]
                assert stamps == sorted(stamps), f"timestamps go backwards: {stamps}"
                # Five seconds of slack for clock granularity; a wrong unit is off by a factor of 1000.
                assert all(started_ms - 5000 <= stamp <= finished_ms + 5000 for stamp in stamps), (
                    f"timestamps {stamps} are not milliseconds since the epoch near {started_ms:.0f}"
                )

        self.run_scenario(pool_harness, scenario)

    # Failures.

    @covers("Runtime.worker_spec")
    def test_timeout_returns_504_and_replaces_worker(self, pool_harness):
        async def scenario(h: PoolHarness) -> None:
            pool = await h.pool("hang")
            old = ready_worker(pool)
            result = await h.invoke(pool, seconds=1.0)

            assert result["status"] == 504, f"a hanging invocation got {result['status']}: {result['body']!r}"
            assert result["error"] == "timeout"
            await wait_until(lambda: old.process.returncode is not None, 10, f"the hung worker pid {old.pid} to exit")
            await wait_until(lambda: ready_worker(pool) is not None, self.start_timeout, "a replacement worker")
            assert ready_worker(pool).pid != old.pid

        self.run_scenario(pool_harness, scenario)

    @covers("Runtime.worker_spec")
    def test_crash_returns_502_and_replaces_worker(self, pool_harness):
        async def scenario(h: PoolHarness) -> None:
            pool = await h.pool("crash")
            old = ready_worker(pool)
            result = await h.invoke(pool)

            assert result["status"] == 502, f"a crashing invocation got {result['status']}: {result['body']!r}"
            assert result["error"] == "worker_crashed"
            message = json.loads(result["body"])["message"]
            assert f"exited with code {CRASH_EXIT_CODE}" in message
            await wait_until(lambda: ready_worker(pool) is not None, self.start_timeout, "a replacement worker")
            assert ready_worker(pool).pid != old.pid

        self.run_scenario(pool_harness, scenario)

    @covers("Runtime.check", "Runtime.worker_spec")
    def test_broken_function_fails_readiness(self, pool_harness):
        async def scenario(h: PoolHarness) -> None:
            pool = h.create_pool("broken")
            try:
                await within(pool.start(), self.start_timeout + 5, "starting a worker of the broken scenario")
            except WorkerStartError as error:
                reported = error.error or str(error)
            else:
                await wait_until(lambda: pool.failure is not None, self.start_timeout,
                                 "the pool to record the start failure")
                reported = pool.failure or ""
                result = await h.invoke(pool)
                assert result["status"] == 503, f"a function that cannot load answered {result['status']}"
                assert BROKEN_MESSAGE in json.loads(result["body"])["message"]
            assert BROKEN_MESSAGE in reported, f"the readiness failure does not carry the load error: {reported!r}"

        self.run_scenario(pool_harness, scenario)
