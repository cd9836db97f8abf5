"""The worker process: load the handler, report readiness, serve invocations on the unix socket."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Mapping

from . import logs
from .event import log_stream_name
from .handler import HandlerLoadError, Invoker, load_handler
from .rpc import (
    MESSAGE_NAME,
    Call,
    ConnectionState,
    ProtocolError,
    WorkerProtocol,
    encode_result,
    encode_system_error,
    frame_message,
    read_message,
)

# The worker's own messages go to the original standard error, which the deflector logs with a
# timestamp and the worker's pid. They never enter a function's log capture.
log = logging.getLogger("boothby_python.worker")


@dataclass(frozen=True)
class WorkerSettings:
    """Settings the pool passes to the worker in its ``BOOTHBY_*`` environment variables."""

    socket_path: str
    ready_fd: int
    schemas_dir: str
    function_dir: str
    handler: str
    concurrency: int
    exit_on_disconnect: bool

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> WorkerSettings:
        """Read the settings, raising ``KeyError`` or ``ValueError`` that names a missing or invalid variable."""
        def require(name: str) -> str:
            value = environ.get(name)
            if not value:
                raise KeyError(f"environment variable {name} is missing")
            return value

        def integer(name: str, default: str) -> int:
            text = environ.get(name) or default
            try:
                return int(text)
            except ValueError:
                raise ValueError(f"environment variable {name} must be an integer, got {text!r}") from None

        return cls(
            socket_path=require("BOOTHBY_SOCKET"),
            ready_fd=integer("BOOTHBY_READY_FD", "-1"),
            schemas_dir=require("BOOTHBY_SCHEMAS"),
            function_dir=environ.get("BOOTHBY_FUNCTION_DIR") or os.getcwd(),
            handler=require("BOOTHBY_HANDLER"),
            concurrency=max(1, integer("BOOTHBY_CONCURRENCY", "1")),
            exit_on_disconnect=environ.get("BOOTHBY_EXIT_ON_DISCONNECT") == "1",
        )


def report_readiness(fd: int, status: dict[str, Any]) -> None:
    """Write the one JSON readiness line to ``fd`` and close it. A missing descriptor is only logged."""
    if fd < 0:
        log.warning("BOOTHBY_READY_FD is not set, so readiness %s is not reported", status["status"])
        return
    with os.fdopen(fd, "w", encoding="utf-8") as ready:
        ready.write(json.dumps(status) + "\n")


class Worker:
    """The server of one worker process's RPC connections."""

    def __init__(self, settings: WorkerSettings, protocol: WorkerProtocol, invoker: Invoker) -> None:
        self.settings = settings
        self.protocol = protocol
        self.invoker = invoker
        self.stopped = asyncio.Event()
        # Running calls: the event loop keeps only weak references to tasks.
        self.tasks: set[asyncio.Task[None]] = set()

    async def serve(self) -> None:
        """Listen, report readiness, and serve until the deflector disconnects, if ``BOOTHBY_EXIT_ON_DISCONNECT`` is 1."""
        server = await asyncio.start_unix_server(self.handle_connection, path=self.settings.socket_path)
        report_readiness(self.settings.ready_fd, {"status": "ready", "pid": os.getpid()})
        log.info("ready: pid %d, handler %s in %s, socket %s, concurrency %d", os.getpid(), self.settings.handler,
                 self.settings.function_dir, self.settings.socket_path, self.settings.concurrency)
        async with server:
            await self.stopped.wait()

    async def handle_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state = ConnectionState(self.protocol)
        write_lock = asyncio.Lock()
        try:
            while True:
                message = await read_message(reader)
                if message is None:
                    break
                call_id, payload = message
                try:
                    call = state.decode_call(call_id, payload)
                except ProtocolError as error:
                    log.error("%s, so the call gets an RPC error", error)
                    await self.send(writer, write_lock, call_id, encode_system_error(b"", str(error)))
                    continue
                task = asyncio.create_task(self.run_call(writer, write_lock, call))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
        except ProtocolError as error:
            log.error("closing the connection: %s", error)
        except ConnectionError as error:
            log.warning("connection failed: %s", error)
        finally:
            writer.close()
            if self.settings.exit_on_disconnect:
                log.info("the deflector closed its connection; exiting")
                self.stopped.set()

    async def run_call(self, writer: asyncio.StreamWriter, write_lock: asyncio.Lock, call: Call) -> None:
        """Run one call and send its response. Failures of the worker itself become RPC errors."""
        if not call.accepted:
            payload = encode_system_error(call.handshake, "unknown client protocol: send its text in clientProtocol")
        elif call.message == "":
            # A ping (the Avro specification allows an empty message name): the response carries only the handshake.
            payload = encode_result(self.protocol, call.handshake, None)
        elif call.message != MESSAGE_NAME or call.invocation is None:
            payload = encode_system_error(
                call.handshake, f"unknown message {call.message!r}; this worker serves only {MESSAGE_NAME!r}"
            )
        else:
            try:
                result = await self.invoker.invoke(call.invocation)
                payload = encode_result(self.protocol, call.handshake, result)
            except Exception as error:  # noqa: BLE001 - a bug here must fail one call, not the worker
                log.error("call %d, request %s: the worker failed: %s", call.call_id, call.invocation.get("id"),
                          "".join(traceback.format_exception(error)).rstrip())
                payload = encode_system_error(call.handshake, f"worker error: {type(error).__name__}: {error}")
        await self.send(writer, write_lock, call.call_id, payload)

    @staticmethod
    async def send(writer: asyncio.StreamWriter, write_lock: asyncio.Lock, call_id: int, payload: bytes) -> None:
        async with write_lock:
            if writer.is_closing():
                log.warning("call %d: connection closed before the response could be sent", call_id)
                return
            writer.write(frame_message(call_id, payload))
            try:
                await writer.drain()
            except ConnectionError as error:
                log.warning("call %d: response not sent: %s", call_id, error)


def format_load_error(error: BaseException, function_dir: str) -> str:
    """Format a load failure with only the traceback entries in the function's own files."""
    folder = os.path.abspath(function_dir) + os.sep
    frames = [
        frame for frame in traceback.extract_tb(error.__traceback__)
        if os.path.isabs(frame.filename) and frame.filename.startswith(folder)
    ]
    lines = traceback.format_list(frames) + traceback.format_exception_only(type(error), error)
    return "".join(lines).rstrip()


def configure_own_logging(stream: Any) -> None:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s boothby-python-worker: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def main() -> None:
    """Run the worker; exit 1 after reporting ``failed`` when the function cannot be loaded."""
    started = time.time()
    configure_own_logging(sys.stderr)
    # SIGINT from a terminal reaches the whole process group, but the deflector decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    try:
        settings = WorkerSettings.from_environ(os.environ)
    except (KeyError, ValueError) as error:
        log.error("cannot start: %s", error.args[0])
        sys.exit(2)

    if sys.path and sys.path[0] != settings.function_dir:
        sys.path.insert(0, settings.function_dir)
    logs.install()

    try:
        protocol = WorkerProtocol.from_schemas_dir(settings.schemas_dir)
        handler = load_handler(settings.function_dir, settings.handler)
    except BaseException as error:  # noqa: BLE001 - whatever the module raised is the load failure to report
        reason = str(error) if isinstance(error, HandlerLoadError) else f"{type(error).__name__}: {error}"
        log.error("cannot load handler %s: %s\n%s", settings.handler, reason, format_load_error(error, settings.function_dir))
        report_readiness(settings.ready_fd, {"status": "failed", "error": reason})
        sys.exit(1)

    executor = ThreadPoolExecutor(max_workers=settings.concurrency, thread_name_prefix="handler")
    invoker = Invoker(handler, executor, log_stream_name(started, os.getpid()))
    worker = Worker(settings, protocol, invoker)
    asyncio.run(worker.serve())
    # Handler threads may still be running, and the deflector kills hung workers, so exit without waiting.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
