"""A pool of warm worker processes for one function: start, call, time out, replace, stop."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import time
from collections import deque
from pathlib import Path
from typing import Any

from .codec import schema_dir
from .config import FunctionConfig
from .errors import ConfigError, WorkerError, WorkerStartError
from .isolation import Isolation
from .rpc import RemoteError, WorkerConnection
from .runtime import Runtime
from .source import make_private_dir, prepare_code

logger = logging.getLogger(__name__)
worker_output = logging.getLogger("boothby.worker")

_STOP_GRACE = 2.0
_RESTART_BACKOFF = (0.5, 1.0, 2.0, 4.0, 8.0)
_PASSED_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "TZ", "SYSTEMROOT")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_MEMORY_CHECK_INTERVAL = 0.1
_MAX_SOCKET_PATH = 104  # sun_path is 108 bytes on Linux, 104 on the BSDs, including the final NUL


def json_response(status: int, error: str, document: dict[str, Any]) -> dict[str, Any]:
    """Build a ``Result``-shaped record with a JSON body, for responses the platform produces."""
    return {
        "status": status,
        "headers": [{"name": "content-type", "value": "application/json"}],
        "body": json.dumps(document).encode("utf-8"),
        "error": error,
        "logs": [],
        "logs_dropped": 0,
    }


def describe_exit(returncode: int | None) -> str:
    """Describe a process exit status: an exit code, or the signal that killed it."""
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = " (killed: out of memory, or stopped by the deflector)" if -returncode == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exited with code {returncode}"


def _resident_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


def _ran_out_of_memory(worker: "Worker") -> bool:
    """Tell whether the worker's last output is a heap-limit abort (V8 prints "heap out of memory")."""
    return any("heap out of memory" in line or "Reached heap limit" in line for line in worker.stderr_tail)


class Worker:
    """One worker process and its RPC connection."""

    def __init__(self, number: int, slot: int, process: asyncio.subprocess.Process, socket_dir: Path) -> None:
        self.number = number
        self.slot = slot
        self.process = process
        self.pid = process.pid
        self.socket_dir = socket_dir
        self.connection: WorkerConnection | None = None
        self.in_flight = 0
        self.invocations = 0
        self.started_at = time.monotonic()
        self.stderr_tail: deque[str] = deque(maxlen=20)
        self.kill_reason: str | None = None
        self.retiring = False
        self.idle_since = time.monotonic()
        self.tasks: list[asyncio.Task[Any]] = []

    @property
    def alive(self) -> bool:
        return self.process.returncode is None and self.kill_reason is None and not self.retiring


class FunctionPool:
    """Keeps between ``function.workers`` and ``function.max_workers`` warm workers and sends invocations to them.

    Slots are counted in invocations: ``capacity`` is max_workers × concurrency. The deflector
    reserves a slot before it takes an invocation from the transport and frees it when the
    result is published, so it never takes more invocations than the pool can grow to run.
    When an invocation finds no free worker the pool starts one, up to ``max_workers``; workers
    idle for ``idle_timeout`` are stopped down to ``workers``. A worker is recycled between
    invocations after ``max_invocations`` calls or ``max_age`` seconds, never during one.
    """

    def __init__(self, function: FunctionConfig, runtime: Runtime, work_dir: Path,
                 start_timeout: float = 30.0, isolation: Isolation | None = None, function_index: int = 0) -> None:
        self.function = function
        self.isolation = isolation or Isolation(enabled=False)
        self.function_index = function_index
        self.gid = self.isolation.function_gid(function_index)
        self.runtime = runtime
        self.work_dir = work_dir
        self.start_timeout = start_timeout
        self.capacity = function.max_workers * function.concurrency
        self.reserved = 0
        self.workers: list[Worker] = []
        self.failure: str | None = None
        self.stopping = False
        self.code_dir: Path | None = None
        self.root: Path | None = None
        self.sockets: Path | None = None
        self._number = 0
        self._changed = asyncio.Condition()
        self._restart_failures = 0
        self._restarting = 0
        self._reserved_slots: set[int] = set()
        self._supervisor: asyncio.Task[None] | None = None
        self.schemas: Path | None = None
        self.tmp_dir: Path | None = None

    # Slot accounting.

    @property
    def free_slots(self) -> int:
        return self.capacity - self.reserved

    async def wait_for_free_slot(self) -> int:
        """Wait until at least one slot is free and return how many are."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.free_slots > 0 or self.stopping)
        return self.free_slots

    def reserve(self, count: int = 1) -> None:
        self.reserved += count

    def release(self, count: int = 1) -> None:
        self.reserved -= count
        self._notify()

    def _notify(self) -> None:
        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        asyncio.get_running_loop().create_task(notify())

    # Lifecycle.

    async def start(self) -> None:
        """Prepare the code and start the workers.

        Workers that fail to start are retried with back-off; when none starts, ``failure``
        contains the error and invocations get a 503 until a retry succeeds.
        """
        self.runtime.check()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.isolation.check_reachable(self.work_dir)
        self.root = make_private_dir(f"boothby-{self.function.name}-", self.work_dir)
        self.sockets = self.root / "sockets"
        self.sockets.mkdir()
        longest = len(str(self.sockets / "w99999-xxxxxxxx" / "rpc.sock").encode())
        if longest > _MAX_SOCKET_PATH:
            raise ConfigError([
                f"[deflector] work_dir {self.work_dir} is too long: worker socket paths would reach {longest} bytes, "
                f"over the unix socket limit of {_MAX_SOCKET_PATH}; choose a shorter work_dir"
            ])
        self.code_dir = prepare_code(self.function.source, self.root)
        self.schemas = self.root / "schemas"
        shutil.copytree(schema_dir(), self.schemas)
        self.tmp_dir = self.root / "tmp"
        self.tmp_dir.mkdir()
        runtime_dir = self.root / "runtime"
        runtime_dir.mkdir()
        self.runtime.prepare(self.function, runtime_dir)
        if self.gid is not None:
            self.isolation.share_with_function(runtime_dir, self.gid)
            for directory in (self.root, self.sockets):
                os.chmod(directory, 0o711)
            self.isolation.share_with_function(self.code_dir, self.gid)
            self.isolation.share_with_function(self.schemas, self.gid)
            os.chown(self.tmp_dir, 0, self.gid)
            os.chmod(self.tmp_dir, 0o1770)
        results = await asyncio.gather(
            *(self._spawn() for _ in range(self.function.workers)), return_exceptions=True
        )
        errors = [result for result in results if isinstance(result, BaseException)]
        for error in errors:
            if not isinstance(error, WorkerStartError):
                raise error
            logger.error("function %s: a worker failed to start: %s", self.function.name, error)
        if errors and len(errors) == len(results):
            self.failure = errors[0].error or str(errors[0])
            self._restart_failures = 1
        self._ensure_minimum()
        self._supervisor = asyncio.create_task(self._supervise(), name=f"supervise-{self.function.name}")
        logger.info("function %s: %d workers ready, %d slots", self.function.name, len(self.workers), self.capacity)

    def _environment(self, socket_path: Path, ready_fd: int) -> dict[str, str]:
        env = {name: os.environ[name] for name in _PASSED_ENVIRONMENT if name in os.environ}
        env.update(self.function.environment)
        env.update({
            "TMPDIR": str(self.tmp_dir),
            "HOME": str(self.tmp_dir),
            "BOOTHBY_SOCKET": str(socket_path),
            "BOOTHBY_SCHEMAS": str(self.schemas),
            "BOOTHBY_FUNCTION_DIR": str(self.code_dir),
            "BOOTHBY_HANDLER": self.function.handler,
            "BOOTHBY_FUNCTION_NAME": self.function.name,
            "BOOTHBY_FUNCTION_VERSION": "$LATEST",
            "BOOTHBY_MEMORY_MB": str(self.function.memory_mb),
            "BOOTHBY_CONCURRENCY": str(self.function.concurrency),
            "BOOTHBY_TIMEOUT_MS": str(int(self.function.timeout * 1000)),
            "BOOTHBY_READY_FD": str(ready_fd),
            "BOOTHBY_EXIT_ON_DISCONNECT": "1",
        })
        return env

    async def _spawn(self) -> Worker:
        """Start one worker in the lowest free slot, wait until it is ready and connect to it."""
        assert self.code_dir is not None
        assert self.sockets is not None
        self._number += 1
        number = self._number
        used = {worker.slot for worker in self.workers} | self._reserved_slots
        slot = min(set(range(len(used) + 1)) - used)
        identity = self.isolation.worker_identity(self.function_index, slot)

        socket_dir = make_private_dir(f"w{number}-", self.sockets)
        self.isolation.give_to_worker(socket_dir, identity)
        socket_path = socket_dir / "rpc.sock"
        spec = self.runtime.worker_spec(self.function, self.code_dir)
        read_fd, write_fd = os.pipe()
        env = self._environment(socket_path, write_fd)
        env.update(spec.env)

        self._reserved_slots.add(slot)
        try:
            try:
                process = await asyncio.create_subprocess_exec(
                    *self.isolation.command_prefix(identity), *spec.argv, env=env, cwd=str(self.code_dir),
                    stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                    pass_fds=(write_fd,), start_new_session=True,
                )
            except BaseException:
                os.close(read_fd)
                shutil.rmtree(socket_dir, ignore_errors=True)
                raise
            finally:
                os.close(write_fd)

            worker = Worker(number, slot, process, socket_dir)
            worker.tasks = [
                asyncio.create_task(self._read_output(worker, process.stdout, logging.INFO)),
                asyncio.create_task(self._read_output(worker, process.stderr, logging.INFO, keep_tail=True)),
            ]
            try:
                await self._wait_ready(worker, read_fd)
                worker.connection = await WorkerConnection.open(str(socket_path), self.function.name, worker.pid)
            except BaseException:
                await self._terminate(worker, force=True)
                shutil.rmtree(socket_dir, ignore_errors=True)
                raise
        finally:
            self._reserved_slots.discard(slot)

        worker.tasks.append(asyncio.create_task(self._watch(worker)))
        self.workers.append(worker)
        self.failure = None
        self._notify()
        logger.info("function %s: worker %d started (pid %d, uid %s)", self.function.name, number, worker.pid,
                    identity.uid if identity.uid is not None else os.geteuid())
        return worker

    async def _wait_ready(self, worker: Worker, read_fd: int) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        pipe = os.fdopen(read_fd, "rb", 0)
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
        try:
            line = await asyncio.wait_for(reader.readline(), self.start_timeout)
        except asyncio.TimeoutError:
            raise WorkerStartError(
                f"function {self.function.name!r}: worker pid {worker.pid} was not ready within "
                f"{self.start_timeout:g}s; raise [deflector] start_timeout if loading takes that long",
                self.function.name, worker.pid, error="start timed out",
            ) from None
        finally:
            transport.close()

        try:
            message = json.loads(line) if line.strip() else {}
        except ValueError:
            message = {"status": "failed", "error": f"invalid readiness line {line[:200]!r}"}
        if message.get("status") == "ready":
            return

        if not message:
            await asyncio.wait_for(worker.process.wait(), _STOP_GRACE)
            await asyncio.sleep(0.05)  # let the stderr reader catch the last lines
            tail = " | ".join(worker.stderr_tail) or "no output"
            error = f"worker {describe_exit(worker.process.returncode)} before it was ready: {tail}"
        else:
            error = str(message.get("error") or message)
        raise WorkerStartError(
            f"function {self.function.name!r} failed to load: {error}", self.function.name, worker.pid, error=error
        )

    async def _read_output(self, worker: Worker, stream: asyncio.StreamReader | None, level: int,
                           keep_tail: bool = False) -> None:
        if stream is None:
            return
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # a line longer than the stream limit
                line = await stream.read(65536)
            if not line:
                return
            text = line.decode("utf-8", "replace").rstrip("\n")
            if keep_tail:
                worker.stderr_tail.append(text)
            worker_output.log(level, "%s worker pid %d: %s", self.function.name, worker.pid, text)

    async def _watch(self, worker: Worker) -> None:
        returncode = await worker.process.wait()
        if worker.connection is not None:
            worker.connection.close()
        if worker in self.workers:
            self.workers.remove(worker)
        shutil.rmtree(worker.socket_dir, ignore_errors=True)
        if self.stopping:
            return

        lived = time.monotonic() - worker.started_at
        if worker.retiring:
            logger.info("function %s: worker %d (pid %d) stopped: %s; %d workers left",
                        self.function.name, worker.number, worker.pid, worker.kill_reason, len(self.workers))
            self._ensure_minimum()
            return

        reason = worker.kill_reason or describe_exit(returncode)
        logger.error(
            "function %s: worker %d (pid %d) %s after %.1fs and %d invocations",
            self.function.name, worker.number, worker.pid, reason, lived, worker.invocations,
        )
        if lived < 1.0 and worker.invocations == 0:
            self._restart_failures += 1
        else:
            self._restart_failures = 0
        self._ensure_minimum()

    def _live_count(self) -> int:
        """Count the workers running and not retiring, plus the replacements being started."""
        return sum(1 for worker in self.workers if not worker.retiring) + self._restarting

    def _ensure_minimum(self) -> None:
        """Start replacements until ``function.workers`` workers are running or starting."""
        missing = self.function.workers - self._live_count()
        for _ in range(max(missing, 0)):
            self._schedule_restart()

    def _grow(self) -> None:
        """Start one more worker when invocations wait and the pool is below ``max_workers``."""
        current = self._live_count()
        if self.stopping or self.failure is not None or current >= self.function.max_workers:
            return
        logger.info("function %s: invocations are waiting; growing from %d to %d workers (max %d)",
                    self.function.name, current, current + 1, self.function.max_workers)
        self._schedule_restart()

    def retire(self, worker: Worker, reason: str) -> None:
        """Stop ``worker`` gracefully once it has no invocation running; it takes no new ones meanwhile."""
        if worker.retiring or worker.kill_reason is not None:
            return
        worker.retiring = True
        worker.kill_reason = reason
        if worker.in_flight == 0:
            asyncio.get_running_loop().create_task(self._terminate(worker))
        self._ensure_minimum()

    async def _supervise(self) -> None:
        """Check memory, idle workers and worker age, a few times a second."""
        limit = self.function.memory_mb * 1024 * 1024
        while not self.stopping:
            await asyncio.sleep(_MEMORY_CHECK_INTERVAL)
            now = time.monotonic()
            for worker in list(self.workers):
                rss = _resident_bytes(worker.pid)
                if rss > limit and worker.process.returncode is None and worker.kill_reason is None:
                    logger.error("function %s: worker pid %d uses %d MiB, over its memory limit of %d MiB; killing it",
                                 self.function.name, worker.pid, rss // 2**20, self.function.memory_mb)
                    self.kill(worker, f"memory limit of {self.function.memory_mb} MiB exceeded")
                elif self.function.max_age and now - worker.started_at >= self.function.max_age and worker.in_flight == 0:
                    self.retire(worker, f"recycled after reaching max_age of {self.function.max_age:g}s")
            idle = [worker for worker in self.workers if worker.alive and worker.in_flight == 0
                    and now - worker.idle_since >= self.function.idle_timeout]
            surplus = sum(1 for worker in self.workers if not worker.retiring) - self.function.workers
            if idle and surplus > 0:
                worker = min(idle, key=lambda candidate: candidate.idle_since)
                self.retire(worker, f"idle for {self.function.idle_timeout:g}s; shrinking towards {self.function.workers}")

    def _schedule_restart(self) -> None:
        asyncio.get_running_loop().create_task(self._restart())

    async def _restart(self) -> None:
        self._restarting += 1
        try:
            await self._restart_until_started()
        finally:
            self._restarting -= 1

    async def _restart_until_started(self) -> None:
        attempt = 0
        while not self.stopping:
            if self._restart_failures:
                delay = _RESTART_BACKOFF[min(self._restart_failures, len(_RESTART_BACKOFF)) - 1]
                await asyncio.sleep(delay)
            if self.stopping:
                return
            try:
                await self._spawn()
                return
            except WorkerStartError as error:
                attempt += 1
                self._restart_failures += 1
                if not self.workers:
                    self.failure = error.error or str(error)
                    self._notify()
                if attempt >= len(_RESTART_BACKOFF):
                    logger.error(
                        "function %s: giving up after %d failed worker starts; last error: %s",
                        self.function.name, attempt, error,
                    )
                    return
                logger.error("function %s: worker start failed (attempt %d): %s", self.function.name, attempt, error)

    async def _terminate(self, worker: Worker, force: bool = False) -> None:
        process = worker.process
        if process.returncode is not None:
            return
        try:
            process.send_signal(signal.SIGKILL if force else signal.SIGTERM)
            await asyncio.wait_for(process.wait(), _STOP_GRACE)
        except ProcessLookupError:
            return
        except asyncio.TimeoutError:
            logger.warning("function %s: worker pid %d ignored SIGTERM for %.0fs; killing it",
                           self.function.name, worker.pid, _STOP_GRACE)
            process.kill()
            await process.wait()

    def kill(self, worker: Worker, reason: str) -> None:
        """Kill ``worker`` at once; its watcher starts a replacement."""
        if worker.kill_reason is None:
            worker.kill_reason = reason
        try:
            worker.process.kill()
        except ProcessLookupError:
            pass

    async def stop(self) -> None:
        """Stop every worker: SIGTERM, then SIGKILL after a short grace."""
        self.stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
        self._notify()
        workers = list(self.workers)
        await asyncio.gather(*(self._terminate(worker) for worker in workers), return_exceptions=True)
        for worker in workers:
            for task in worker.tasks:
                task.cancel()
            if worker.connection is not None:
                worker.connection.close()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
        logger.info("function %s: %d workers stopped", self.function.name, len(workers))

    # Calls.

    async def _acquire(self, deadline: float) -> Worker | None:
        def available() -> Worker | None:
            best = None
            for worker in self.workers:
                if worker.alive and worker.connection and worker.in_flight < self.function.concurrency:
                    if best is None or worker.in_flight < best.in_flight:
                        best = worker
            return best

        while True:
            worker = available()
            if worker is not None:
                return worker
            if self.failure is not None or self.stopping:
                return None
            self._grow()
            remaining = deadline - time.time()
            if remaining <= 0:
                return None
            # Another waiter may take the worker that woke this one, so check again after every wake-up.
            async with self._changed:
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except asyncio.TimeoutError:
                    pass

    async def invoke(self, invocation_record: bytes | memoryview, request_id: str, deadline: float) -> dict[str, Any]:
        """Run one invocation and return a ``WorkerResult``-shaped record; never raises for worker failures.

        ``deadline`` is absolute (``time.time()`` seconds). A worker that is still running the
        invocation at the deadline is killed and replaced, and the result is a 504.
        """
        name = self.function.name
        if self.failure is not None and not self.workers:
            return self._unavailable(request_id)
        worker = await self._acquire(deadline)
        if worker is None:
            if self.failure is not None:
                return self._unavailable(request_id)
            return self._timeout(request_id)

        worker.in_flight += 1
        worker.invocations += 1
        try:
            return await asyncio.wait_for(worker.connection.invoke(invocation_record), deadline - time.time())  # type: ignore[union-attr]
        except asyncio.TimeoutError:
            logger.error("function %s: request %s timed out after %gs; killing worker pid %d",
                         name, request_id, self.function.timeout, worker.pid)
            self.kill(worker, f"killed after request {request_id} passed its deadline")
            return self._timeout(request_id)
        except RemoteError as error:
            logger.error("function %s: request %s: %s", name, request_id, error)
            return json_response(502, "worker_error", {
                "error": "worker error", "message": str(error), "requestId": request_id,
            })
        except WorkerError as error:
            # The socket closes before the exit status and the last stderr lines are known.
            await asyncio.wait([asyncio.ensure_future(worker.process.wait()), *worker.tasks[:2]], timeout=1.0)
            reason = worker.kill_reason or describe_exit(worker.process.returncode)
            if _ran_out_of_memory(worker):
                reason = f"memory limit of {self.function.memory_mb} MiB exceeded"
            logger.error("function %s: request %s failed: worker pid %d %s (%s)", name, request_id, worker.pid, reason, error)
            if reason.startswith("memory limit"):
                return json_response(502, "memory_limit", {
                    "error": "memory limit exceeded",
                    "limit": "memory",
                    "message": f"the worker running function {name!r} was stopped: {reason}; raise the function's memory",
                    "requestId": request_id,
                })
            return json_response(502, "worker_crashed", {
                "error": "worker crashed",
                "message": f"the worker running function {name!r} stopped during the request: {reason}",
                "requestId": request_id,
            })
        finally:
            worker.in_flight -= 1
            if worker.in_flight == 0:
                worker.idle_since = time.monotonic()
                if worker.retiring:
                    asyncio.get_running_loop().create_task(self._terminate(worker))
            if self.function.max_invocations and worker.invocations >= self.function.max_invocations:
                self.retire(worker, f"recycled after {worker.invocations} invocations (max_invocations)")
            self._notify()

    def _unavailable(self, request_id: str) -> dict[str, Any]:
        return json_response(503, "unavailable", {
            "error": "function unavailable",
            "message": f"function {self.function.name!r} failed to start: {self.failure}",
            "requestId": request_id,
        })

    def _timeout(self, request_id: str) -> dict[str, Any]:
        return json_response(504, "timeout", {
            "error": "timeout",
            "limit": "time",
            "message": f"function {self.function.name!r} did not finish within its timeout of {self.function.timeout:g}s",
            "requestId": request_id,
        })
