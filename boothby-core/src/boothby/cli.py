"""The ``boothby`` command line: up, grappler, deflector, plugins and invoke."""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import parse_qsl

from .config import Config, load_config
from .errors import BoothbyError

logger = logging.getLogger("boothby.cli")

_STOP_GRACE = 40.0
_PR_SET_PDEATHSIG = 1


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s[%(process)d] %(message)s",
        stream=sys.stderr,
    )


def _load(args: argparse.Namespace) -> Config:
    return load_config(args.config)


def _check_transport(config: Config, registry: Any) -> None:
    """Fail before gunicorn forks when the transport's name or its settings are invalid."""
    backend = registry.get("transport", config.transport)
    backend.factory(config.settings_for_transport(), config)


def cmd_deflector(args: argparse.Namespace) -> int:
    from . import deflector
    from .plugins import load_registry

    config = _load(args)
    deflector.run(config, load_registry())
    return 0


def cmd_grappler(args: argparse.Namespace) -> int:
    from . import server
    from .plugins import load_registry

    config = _load(args)
    _check_transport(config, load_registry())
    server.run(config)
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    """Run a deflector and a grappler as two child processes and stop both when either stops."""
    from .plugins import load_registry

    config = _load(args)
    registry = load_registry()
    _check_transport(config, registry)
    for function in config.functions.values():
        registry.get("runtime", function.runtime).factory(config.runtime_settings.get(function.runtime, {})).check()
    for sink in config.log_sinks:
        registry.get("log_sink", sink).factory(config.log_sink_settings.get(sink, {}))

    common = ["--log-level", args.log_level]
    if args.config:
        common += ["-c", str(Path(args.config).absolute())]
    # Each child gets a process group of its own, so a terminal's Ctrl-C reaches only this process,
    # which then stops the children once and gracefully. A child also gets SIGTERM if this process
    # dies without stopping it.
    children = {
        role: subprocess.Popen([sys.executable, "-m", "boothby", *common, role], process_group=0,
                               preexec_fn=_terminate_with_parent)
        for role in ("deflector", "grappler")
    }
    logger.info("boothby up: deflector pid %d, grappler pid %d, serving http://%s/",
                children["deflector"].pid, children["grappler"].pid, config.grappler.bind)

    stopping = False

    def forward(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)

    exit_code = 0
    while True:
        for role, child in children.items():
            code = child.poll()
            if code is None:
                continue
            if not stopping:
                logger.error("boothby up: the %s exited with code %s; stopping the other process", role, code)
                exit_code = code or 1
                forward(signal.SIGTERM, None)
            break
        else:
            time.sleep(0.1)
            continue
        break

    deadline = time.monotonic() + _STOP_GRACE
    for role, child in children.items():
        try:
            child.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            logger.error("boothby up: the %s did not stop within %.0fs; killing pid %d", role, _STOP_GRACE, child.pid)
            child.kill()
            child.wait()
    return exit_code


def _terminate_with_parent() -> None:
    """Ask Linux to send SIGTERM to this (child) process when its parent exits."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: the children are still stopped by cmd_up on a normal exit


def cmd_plugins(args: argparse.Namespace) -> int:
    from .plugins import load_registry

    registry = load_registry()
    backends = registry.all()
    if args.json:
        print(json.dumps({
            "plugins": [
                {"name": b.name, "kind": b.kind, "distribution": b.distribution, "version": b.version, "plugin": b.plugin}
                for b in backends
            ],
            "failures": [dataclasses.asdict(failure) for failure in registry.failures],
        }, indent=2))
        return 0

    rows = [("NAME", "KIND", "DISTRIBUTION", "VERSION")]
    rows += [(b.name, b.kind, b.distribution, b.version) for b in backends]
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    if registry.failures:
        print("\nFailed to load:")
        for failure in registry.failures:
            print(f"  {failure.name} ({failure.distribution}): {failure.reason}")
    return 0


def cmd_invoke(args: argparse.Namespace) -> int:
    """Run one request through a temporary worker of the function and print the response and its logs."""
    from .plugins import load_registry
    from .pool import FunctionPool
    from .deflector import function_error_result
    from .codec import invocation_schema
    from .isolation import Isolation

    config = _load(args)
    if args.function not in config.functions:
        raise BoothbyError(f"function {args.function!r} is not configured; functions: {', '.join(config.functions) or 'none'}")
    function = dataclasses.replace(config.functions[args.function], workers=1, max_workers=1)
    registry = load_registry()
    runtime = registry.get("runtime", function.runtime).factory(config.runtime_settings.get(function.runtime, {}))

    body: bytes | None = None
    if args.data_file:
        body = sys.stdin.buffer.read() if args.data_file == "-" else Path(args.data_file).read_bytes()
    elif args.data is not None:
        body = args.data.encode("utf-8")
    headers = []
    for header in args.header:
        name, separator, value = header.partition(":")
        if not separator:
            raise BoothbyError(f"header {header!r} is invalid: expected 'Name: value'")
        headers.append({"name": name.strip().lower(), "value": value.strip()})
    path, _, query_string = args.path.partition("?")
    now = time.time()
    request_id = str(uuid.uuid4())
    invocation = {
        "id": request_id, "function": function.name,
        "deadline_ms": int((now + function.timeout) * 1000), "received_ms": int(now * 1000),
        "reply_to": "", "method": args.method or ("POST" if body is not None else "GET"),
        "path": path, "raw_path": f"/{function.name}{path}", "query_string": query_string,
        "query": [{"name": n, "value": v} for n, v in parse_qsl(query_string, keep_blank_values=True)],
        "headers": headers, "body": body, "source_ip": "127.0.0.1", "protocol": "HTTP/1.1",
    }

    async def run() -> dict[str, Any]:
        settings = config.deflector
        work_dir = settings.work_dir or Path(tempfile.gettempdir())
        isolation = Isolation(settings.worker_id_base, settings.max_open_files, settings.max_processes)
        isolation.warn_if_disabled()
        index = list(config.functions).index(function.name)
        pool = FunctionPool(function, runtime, work_dir, settings.start_timeout, isolation, index)
        await pool.start()
        try:
            return await pool.invoke(invocation_schema().encode_bare(invocation), request_id, now + function.timeout)
        finally:
            await pool.stop()

    outcome = asyncio.run(run())
    status, response_headers, response_body = outcome["status"], outcome["headers"], outcome["body"]
    if isinstance(outcome["error"], dict):
        status, response_headers, response_body = function_error_result(outcome["error"], request_id)
    print(f"HTTP {status}")
    print(f"x-request-id: {request_id}")
    for header in response_headers:
        print(f"{header['name']}: {header['value']}")
    print()
    if response_body:
        sys.stdout.buffer.write(response_body)
        if not response_body.endswith(b"\n"):
            sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()
    for log in outcome["logs"]:
        print(f"[{log['level']}] {log['message']}", file=sys.stderr)
    if outcome["logs_dropped"]:
        print(f"[warn] {outcome['logs_dropped']} log records dropped", file=sys.stderr)
    return 0 if status < 500 else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="boothby", description="Functions as a service on warm worker processes.")
    parser.add_argument("-c", "--config", help="configuration file (default: $BOOTHBY_CONFIG or ./boothby.toml)")
    parser.add_argument("--log-level", default=os.environ.get("BOOTHBY_LOG_LEVEL", "info"),
                        choices=["debug", "info", "warning", "error"], help="log level of Boothby's own logs")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=help_text, description=help_text)
        command.add_argument("-c", "--config", default=argparse.SUPPRESS,
                             help="configuration file (default: $BOOTHBY_CONFIG or ./boothby.toml)")
        command.set_defaults(handler=handler)
        return command

    add("up", cmd_up, "run the grappler and the deflector together")
    add("grappler", cmd_grappler, "run the HTTP edge only")
    add("deflector", cmd_deflector, "run the worker pools only")
    plugins = add("plugins", cmd_plugins, "list installed plugins and plugins that failed to load")
    plugins.add_argument("--json", action="store_true", help="print JSON instead of a table")
    invoke = add("invoke", cmd_invoke, "run one request through a function locally and print the response and its logs")
    invoke.add_argument("function", help="name of a configured function")
    invoke.add_argument("path", nargs="?", default="/", help="request path below the function, with an optional ?query")
    invoke.add_argument("-X", "--method", help="HTTP method (default: GET, or POST with a body)")
    invoke.add_argument("-d", "--data", help="request body as text")
    invoke.add_argument("--data-file", help="read the request body from this file, or - for standard input")
    invoke.add_argument("-H", "--header", action="append", default=[], help="request header 'Name: value'; repeatable")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    _setup_logging(args.log_level)
    try:
        code = args.handler(args)
    except BoothbyError as error:
        print(f"boothby: error: {error}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
