"""The deflector: takes invocations from the transport as worker slots free up, runs them, publishes results."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .codec import HEADER_SIZE, decode_invocation_head, result_schema
from .config import Config
from .errors import BoothbyError, CodecError
from .isolation import Isolation
from .logsink import FunctionLog, LogShipper
from .plugins import Registry
from .pool import FunctionPool
from .transport import Delivery, Transport

logger = logging.getLogger(__name__)

_STEP_TIMEOUT = 10.0


@dataclass
class DeflectorStats:
    """Counters of one deflector's life."""

    received: int = 0
    completed: int = 0
    expired: int = 0
    undecodable: int = 0
    reply_failures: int = 0
    withdrawn: int = 0


def function_error_result(error: dict[str, Any], request_id: str) -> tuple[int, list[dict[str, str]], bytes]:
    """Compose the 500 response for a function that threw, rejected or called back with an error."""
    body = json.dumps({
        "errorType": error["type"],
        "errorMessage": error["message"],
        "trace": error["trace"],
        "requestId": request_id,
    }).encode("utf-8")
    return 500, [{"name": "content-type", "value": "application/json"}], body


class Deflector:
    """Runs the functions of one configuration in warm worker pools behind one transport."""

    def __init__(self, config: Config, registry: Registry) -> None:
        self.config = config
        self.registry = registry
        transport_backend = registry.get("transport", config.transport)
        self.runtimes = {
            name: registry.get("runtime", function.runtime).factory(config.runtime_settings.get(function.runtime, {}))
            for name, function in config.functions.items()
        }
        sinks = [
            registry.get("log_sink", sink).factory(config.log_sink_settings.get(sink, {}))
            for sink in config.log_sinks
        ]
        self.transport: Transport = transport_backend.factory(config.settings_for_transport(), config)
        self.shipper = LogShipper(sinks, capacity=config.deflector.log_buffer)
        self.pools: dict[str, FunctionPool] = {}
        self.stats = DeflectorStats()
        self._consumers: list[asyncio.Task[None]] = []
        self._running: set[asyncio.Task[None]] = set()
        self._held: set[Delivery] = set()
        self._result = result_schema()

    async def start(self) -> None:
        """Start the workers of every function, then the log sinks and the transport."""
        for runtime in self.runtimes.values():
            runtime.check()
        self.registry.plugin_manager.hook.boothby_startup(role="deflector", config=self.config)
        settings = self.config.deflector
        work_dir = settings.work_dir or Path(tempfile.gettempdir())
        isolation = Isolation(settings.worker_id_base, settings.max_open_files, settings.max_processes)
        isolation.warn_if_disabled()
        self.pools = {
            name: FunctionPool(function, self.runtimes[name], work_dir, settings.start_timeout, isolation, index)
            for index, (name, function) in enumerate(self.config.functions.items())
        }
        await asyncio.gather(*(pool.start() for pool in self.pools.values()))
        await self.shipper.start()
        await self.transport.start_server(list(self.pools))
        for name, pool in self.pools.items():
            self._consumers.append(asyncio.create_task(self._consume(name, pool), name=f"consume-{name}"))
        logger.info("deflector ready: transport %s, functions %s", self.config.transport, ", ".join(self.pools))

    async def _consume(self, name: str, pool: FunctionPool) -> None:
        delay = 0.1
        while True:
            free = await pool.wait_for_free_slot()
            if pool.stopping:
                return
            pool.reserve(free)
            try:
                deliveries = await self.transport.receive(name, free)
                delay = 0.1
            except asyncio.CancelledError:
                pool.release(free)
                raise
            except self.transport.connection_errors + (BoothbyError,) as error:
                pool.release(free)
                logger.warning("deflector: receiving invocations of %s failed: %s; retrying in %.1fs", name, error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if len(deliveries) < free:
                pool.release(free - len(deliveries))
            self.stats.received += len(deliveries)
            for delivery in deliveries:
                self._held.add(delivery)
                task = asyncio.create_task(self._handle(name, pool, delivery))
                self._running.add(task)
                task.add_done_callback(self._running.discard)

    async def _handle(self, name: str, pool: FunctionPool, delivery: Delivery) -> None:
        try:
            await self._run(name, pool, delivery)
        except Exception:
            logger.exception("deflector: unexpected error while handling an invocation of %s", name)
        finally:
            self._held.discard(delivery)
            pool.release()

    async def _run(self, name: str, pool: FunctionPool, delivery: Delivery) -> None:
        payload = delivery.payload
        try:
            invocation = decode_invocation_head(payload)
        except CodecError as error:
            self.stats.undecodable += 1
            logger.error("deflector: dropped an invocation of %s that cannot be decoded: %s", name, error)
            await delivery.finished()
            return

        request_id = invocation.id
        deadline = invocation.deadline_ms / 1000
        late = time.time() - deadline
        if late >= 0:
            self.stats.expired += 1
            logger.warning("deflector: request %s for %s expired %.0f ms before it could start; dropped (%d expired so far)",
                           request_id, name, late * 1000, self.stats.expired)
            await delivery.finished()
            return

        try:
            await delivery.started()
        except BoothbyError as error:
            self.stats.withdrawn += 1
            logger.warning("deflector: request %s for %s not run here: %s (%d so far)",
                           request_id, name, error, self.stats.withdrawn)
            return
        outcome = await pool.invoke(memoryview(payload)[HEADER_SIZE:], request_id, deadline)
        error = outcome["error"]
        if isinstance(error, dict):
            status, headers, body = function_error_result(error, request_id)
            kind = "handler_error"
        else:
            status, headers, body, kind = outcome["status"], outcome["headers"], outcome["body"], error
        result = self._result.encode({"id": request_id, "status": status, "headers": headers, "body": body, "error": kind})
        try:
            await self.transport.reply(invocation.reply_to, result, request_id=request_id)
        except self.transport.connection_errors + (BoothbyError,) as reply_error:
            self.stats.reply_failures += 1
            logger.error("deflector: publishing the result of request %s to %s failed: %s",
                         request_id, invocation.reply_to, reply_error)
        self.stats.completed += 1
        await delivery.finished()
        self._ship_logs(name, request_id, outcome, error)

    def _ship_logs(self, name: str, request_id: str, outcome: dict[str, Any], error: Any) -> None:
        records = [
            FunctionLog(name, request_id, log["timestamp_ms"], log["level"], log["message"])
            for log in outcome["logs"]
        ]
        now = time.time() * 1000
        if outcome["logs_dropped"]:
            records.append(FunctionLog(name, request_id, now, "warn",
                                       f"{outcome['logs_dropped']} log records dropped: the per-invocation log limit was reached"))
        if isinstance(error, dict):
            records.append(FunctionLog(name, request_id, now, "error", f"{error['type']}: {error['message']}"))
        self.shipper.ship(records)

    @staticmethod
    async def _bounded(step: str, awaitable: Any, timeout: float = _STEP_TIMEOUT) -> None:
        """Await one shutdown step, logging instead of hanging when a broker does not respond."""
        try:
            await asyncio.wait_for(awaitable, timeout)
        except asyncio.TimeoutError:
            logger.error("deflector: %s took longer than %gs; going on with the shutdown", step, timeout)
        except Exception:
            logger.exception("deflector: %s failed; going on with the shutdown", step)

    async def stop(self) -> None:
        """Stop taking invocations, finish running ones within the grace period, then stop everything."""
        logger.info("deflector: stopping; %d invocations running", len(self._running))
        for consumer in self._consumers:
            consumer.cancel()
        await asyncio.gather(*self._consumers, return_exceptions=True)
        if self._running:
            done, pending = await asyncio.wait(set(self._running), timeout=self.config.deflector.shutdown_grace)
            if pending:
                logger.warning("deflector: %d invocations still running after the %gs grace period; stopping them",
                               len(pending), self.config.deflector.shutdown_grace)
                for task in pending:
                    task.cancel()
        await self._bounded("handing back unstarted invocations",
                            asyncio.gather(*(delivery.release() for delivery in list(self._held))))
        await self._bounded("closing the transport", self.transport.close())
        await asyncio.gather(*(pool.stop() for pool in self.pools.values()))
        await self.shipper.close()
        try:
            self.registry.plugin_manager.hook.boothby_shutdown(role="deflector", config=self.config)
        except Exception:
            logger.exception("deflector: a boothby_shutdown hook failed")
        logger.info("deflector stopped: %s", self.stats)


async def serve(config: Config, registry: Registry) -> None:
    """Run a deflector until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            logger.error("deflector: second %s during shutdown; exiting at once", signal.Signals(signum).name)
            os._exit(1)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    deflector = Deflector(config, registry)
    try:
        await deflector.start()
    except BaseException:
        await deflector.stop()
        raise
    await stop.wait()
    await deflector.stop()


def run(config: Config, registry: Registry) -> None:
    """Run a deflector in this process on a new event loop (uvloop when installed)."""
    _run_loop(serve(config, registry))


def _run_loop(coroutine: Any) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(coroutine)
    else:
        uvloop.run(coroutine)
