"""The contenders of the benchmark: Boothby on each transport, the bare-Node limit, Celery and of-watchdog.

Every contender serves the same two routes on 127.0.0.1: ``GET /trivial`` returns a short text
and ``POST /echo`` returns the request body. Each one starts its own processes through the
run's ``ServiceSet`` and lists the processes (its own and its broker's) whose CPU time it uses.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from .errors import BenchError
from .processes import ProcessInfo, Service, ServiceSet, all_processes, process_tree, read_process, rss_bytes

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
FUNCTIONS_DIR = BENCH_DIR / "functions"
TRIVIAL_BODY = b"Hello, world!\n"
READY_TIMEOUT = 120.0
"""Seconds a contender may take from start to its first correct response (Kafka's group join is the slowest)."""

BROKER_PORTS = {"redis": 6379, "rabbitmq": 5672, "kafka": 9092}
BOOTHBY_TRANSPORTS = ("embedded", "redis", "rabbitmq", "kafka")
OF_WATCHDOG_MODULE = "github.com/openfaas/of-watchdog"


class Unavailable(Exception):
    """A contender cannot run on this machine now, for the reason in the message."""


@dataclass
class RunContext:
    """The settings and resources that every contender shares: work folder, process set, options."""

    work_dir: Path
    services: ServiceSet
    body_file: Path
    function_workers: int
    grappler_workers: int
    of_watchdog_version: str
    python: str = sys.executable
    node: str = "node"
    cache_dir: Path = REPO / ".cache" / "bench"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http_request(url: str, method: str = "GET", body: bytes | None = None, content_type: str = "text/plain",
                 timeout: float = 5.0) -> tuple[int, bytes]:
    """Send one request over a new connection and return the status and the body."""
    assert url.startswith("http://127.0.0.1:"), url
    host_port, _, path = url.removeprefix("http://").partition("/")
    host, _, port = host_port.partition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        headers = {"Content-Type": content_type} if body is not None else {}
        connection.request(method, "/" + path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def broker_reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def broker_pid(name: str) -> int | None:
    """Return the pid that scripts/brokers/ recorded for a broker it started, or None."""
    brokers_dir = Path(os.environ.get("BOOTHBY_BROKERS_DIR", REPO / ".brokers"))
    try:
        return int((brokers_dir / name / f"{name}.pid").read_text().strip())
    except (OSError, ValueError):
        return None


@dataclass
class Contender:
    """One thing being measured; subclasses start it and tell its processes apart."""

    name: str
    label: str
    kind: str  # "boothby", "limit" or "peer"
    context: RunContext
    broker: str | None = None
    services: list[Service] = field(default_factory=list)
    base_url: str = ""
    status: str = "pending"  # pending, running, skipped or failed
    reason: str | None = None
    rounds_measured: int = 0
    settings: dict = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def check_available(self) -> None:
        """Raise Unavailable when the contender cannot start here; may install what is missing."""
        if self.broker and not broker_reachable(BROKER_PORTS[self.broker]):
            raise Unavailable(f"{self.broker} is not listening on 127.0.0.1:{BROKER_PORTS[self.broker]}; "
                              "start the brokers with `make brokers`")

    def start(self) -> None:
        raise NotImplementedError

    def url(self, function: str) -> str:
        return f"{self.base_url}/{function}"

    def processes(self, snapshot: Mapping[int, ProcessInfo]) -> list[tuple[str, ProcessInfo]]:
        """Return (role, process) for each process whose CPU time counts for this contender."""
        roles = []
        for service in self.services:
            roles += [(self.role_of(service, info, snapshot), info) for info in process_tree(service.pid, snapshot)]
        if self.broker:
            pid = broker_pid(self.broker)
            if pid is not None:
                roles += [(f"{self.broker} broker", info) for info in process_tree(pid, snapshot)]
        return roles

    def role_of(self, service: Service, info: ProcessInfo, snapshot: Mapping[int, ProcessInfo]) -> str:
        return service.name

    def broker_identity(self) -> tuple[int, int] | None:
        """Return the broker's (pid, start time), which changes when the broker restarts; None without one."""
        pid = broker_pid(self.broker) if self.broker else None
        info = read_process(pid) if pid is not None else None
        return (info.pid, info.start_ticks) if info is not None else None

    def dead_service(self) -> Service | None:
        return next((service for service in self.services if not service.running()), None)

    def stop(self) -> None:
        for service in reversed(self.services):
            self.context.services.stop(service)
        self.services.clear()

    def _start_service(self, role: str, argv: list[str], env: Mapping[str, str] | None = None,
                       cwd: Path | None = None) -> Service:
        log_path = self.context.work_dir / f"{self.name}-{role.replace(' ', '-')}.log"
        service = self.context.services.start(role, argv, log_path, env=env, cwd=cwd)
        self.services.append(service)
        return service

    def wait_until_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Wait for a correct response on both routes; raise BenchError with the logs when none comes."""
        body = self.context.body_file.read_bytes()
        deadline = time.monotonic() + timeout
        problem = "no response yet"
        while time.monotonic() < deadline:
            dead = self.dead_service()
            if dead is not None:
                raise BenchError(f"{self.label}: {dead.name} (pid {dead.pid}) exited with code "
                                 f"{dead.popen.returncode} while starting:\n{dead.log_tail()}")
            try:
                status, content = http_request(self.url("trivial"))
                if status == 200 and content == TRIVIAL_BODY:
                    status, content = http_request(self.url("echo"), "POST", body)
                    if status == 200 and content == body:
                        return
                    problem = f"POST /echo returned {status} with {len(content)} bytes, expected 200 and the same {len(body)} bytes"
                else:
                    problem = f"GET /trivial returned {status} {content[:200]!r}, expected 200 {TRIVIAL_BODY!r}"
            except OSError as error:
                problem = f"request failed: {error}"
            time.sleep(0.2)
        logs = "\n".join(f"--- {service.name} (pid {service.pid}):\n{service.log_tail(1500)}" for service in self.services)
        raise BenchError(f"{self.label} returned no correct response within {timeout:.0f}s: {problem}\n{logs}")

    def memory(self) -> list[dict]:
        """Return the resident set size of each of the contender's own processes (not the broker's)."""
        snapshot = all_processes()
        rows = []
        for role, info in self.processes(snapshot):
            if role.endswith(" broker"):
                continue
            rss = rss_bytes(info.pid)
            if rss is not None:
                rows.append({"role": role, "pid": info.pid, "function": function_of(info), "rss_bytes": rss})
        return rows


def function_of(info: ProcessInfo) -> str | None:
    """Return the Boothby function a node worker serves, from the private folder in its command line."""
    for name in ("trivial", "echo"):
        if f"/boothby-{name}-" in info.cmdline:
            return name
    return None


class BoothbyContender(Contender):
    """``boothby up`` on one transport, serving /trivial and /echo with the same pool settings."""

    def __init__(self, transport: str, context: RunContext, index: int) -> None:
        super().__init__(name=transport, label=f"Boothby ({transport})", kind="boothby", context=context,
                         broker=transport if transport != "embedded" else None)
        self.transport = transport
        self.index = index
        self.up: Service | None = None

    def check_available(self) -> None:
        installed = installed_transports(self.context.python)
        if self.transport not in installed:
            raise Unavailable(f"the {self.transport} transport plugin is not installed (installed: "
                              f"{', '.join(sorted(installed)) or 'none'}); `boothby plugins` lists the plugins")
        super().check_available()

    def start(self) -> None:
        port = free_port()
        directory = self.context.work_dir / f"boothby-{self.transport}"
        directory.mkdir(exist_ok=True)
        config = write_boothby_config(directory, self.transport, port, self.context.function_workers,
                                      self.context.grappler_workers, ("trivial", "echo"), 200_000 + 10_000 * self.index)
        self.settings = {"config": config.read_text()}
        self.base_url = f"http://127.0.0.1:{port}"
        self.up = self._start_service("boothby up", [boothby_command(self.context.python), "-c", str(config), "up"])

    def role_of(self, service: Service, info: ProcessInfo, snapshot: Mapping[int, ProcessInfo]) -> str:
        return boothby_role(service.pid, info, snapshot)


def boothby_role(root_pid: int, info: ProcessInfo, snapshot: Mapping[int, ProcessInfo]) -> str:
    """Name a process of a ``boothby up`` tree: the up process, grappler master or worker, deflector or node worker."""
    if info.pid == root_pid:
        return "boothby up"
    parent = snapshot.get(info.ppid)
    if parent is None:
        return "other"
    parent_role = boothby_role(root_pid, parent, snapshot)
    arguments = info.cmdline.split()
    if parent_role == "boothby up":
        if "deflector" in arguments:
            return "deflector"
        if "grappler" in arguments:
            return "grappler master"
    if parent_role == "grappler master":
        return "grappler worker"
    if parent_role == "deflector":
        return "node worker" if info.name == "node" else "deflector child"
    return parent_role


def boothby_command(python: str) -> str:
    """Return the ``boothby`` console script of the virtualenv that runs the harness."""
    return str(Path(python).parent / "boothby")


def installed_transports(python: str) -> set[str]:
    """Ask ``boothby plugins --json`` (a new process, so newly installed plugins count) for the transports."""
    completed = subprocess.run([boothby_command(python), "plugins", "--json"], capture_output=True, text=True, timeout=60)
    if completed.returncode != 0:
        raise Unavailable(f"`boothby plugins --json` failed with exit code {completed.returncode}: {completed.stderr[-500:]}")
    return {plugin["name"] for plugin in json.loads(completed.stdout)["plugins"] if plugin["kind"] == "transport"}


def write_boothby_config(directory: Path, transport: str, port: int, workers: int, grappler_workers: int,
                         functions: tuple[str, ...], worker_id_base: int) -> Path:
    """Write a boothby.toml for the benchmark; every address in it is on 127.0.0.1."""
    transport_tables = {
        "embedded": f'[transport.embedded]\nsocket = "{directory}/embedded.sock"\n',
        "redis": '[transport.redis]\nurl = "redis://127.0.0.1:6379/0"\nkey_prefix = "boothby-bench"\n',
        "rabbitmq": '[transport.rabbitmq]\nurl = "amqp://guest:guest@127.0.0.1:5672/%2F"\nqueue_prefix = "boothby-bench"\n',
        "kafka": '[transport.kafka]\nbootstrap_servers = "127.0.0.1:9092"\ntopic_prefix = "boothby-bench"\n',
    }
    lines = [
        "# Written by bench/contenders.py for one benchmark run.",
        "[boothby]",
        f'transport = "{transport}"',
        'log_sinks = ["stdout"]',
        "",
        "[grappler]",
        f'bind = "127.0.0.1:{port}"',
        f"workers = {grappler_workers}",
        'graceful_timeout = "2s"',
        "",
        "[deflector]",
        'shutdown_grace = "2s"',
        f"worker_id_base = {worker_id_base}",
        "",
        transport_tables[transport],
    ]
    for name in functions:
        lines += [
            f"[functions.{name}]",
            f'source = "{FUNCTIONS_DIR / name}"',
            'handler = "index.handler"',
            'runtime = "node"',
            'timeout = "30s"',
            f"workers = {workers}",
            "",
        ]
    path = directory / "boothby.toml"
    path.write_text("\n".join(lines))
    return path


def bare_node_argv(node: str, port: int) -> list[str]:
    return [node, str(BENCH_DIR / "bare_node_server.js"), "127.0.0.1", str(port),
            f"/trivial={FUNCTIONS_DIR / 'trivial' / 'index.js'}", f"/echo={FUNCTIONS_DIR / 'echo' / 'index.js'}"]


class BareNodeContender(Contender):
    """The limit: the same handlers in one Node process with the http module and nothing else."""

    def __init__(self, context: RunContext) -> None:
        super().__init__(name="bare-node", label="bare Node.js http (limit)", kind="limit", context=context)

    def start(self) -> None:
        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        self._start_service("node server", bare_node_argv(self.context.node, port))


class CeleryContender(Contender):
    """Celery with Redis as broker and result backend, behind a threaded Python HTTP front."""

    def __init__(self, context: RunContext) -> None:
        super().__init__(name="celery", label="Celery (Redis)", kind="peer", context=context, broker="redis")
        self.concurrency = context.function_workers

    def check_available(self) -> None:
        super().check_available()
        if _celery_installed(self.context.python):
            return
        requirements = BENCH_DIR / "requirements.txt"
        print(f"celery is not installed: pip install -r {requirements.relative_to(REPO)}", flush=True)
        completed = subprocess.run([self.context.python, "-m", "pip", "install", "--quiet", "-r", str(requirements)],
                                   capture_output=True, text=True, timeout=900)
        if completed.returncode != 0 or not _celery_installed(self.context.python):
            raise Unavailable(f"pip install -r {requirements} failed with exit code {completed.returncode}: "
                              f"{completed.stderr.strip()[-800:]}")

    def start(self) -> None:
        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        environment = {**os.environ, "PYTHONPATH": str(REPO), "BENCH_CELERY_REDIS_URL": "redis://127.0.0.1:6379/1",
                       "BENCH_CELERY_QUEUE": "boothby-bench"}
        celery = str(Path(self.context.python).parent / "celery")
        worker_argv = [celery, "-A", "bench.celery_app", "worker", "--pool", "prefork",
                       "--concurrency", str(self.concurrency), "--loglevel", "WARNING",
                       "--without-gossip", "--without-mingle", "--without-heartbeat", "--purge"]
        self.settings = {"worker": " ".join(worker_argv[1:]), "front": "python -m bench.celery_front (ThreadingHTTPServer)"}
        self._start_service("celery worker", worker_argv, env=environment, cwd=REPO)
        self._start_service("http front", [self.context.python, "-m", "bench.celery_front", "127.0.0.1", str(port)],
                            env=environment, cwd=REPO)

    def role_of(self, service: Service, info: ProcessInfo, snapshot: Mapping[int, ProcessInfo]) -> str:
        if service.name == "celery worker" and info.pid != service.pid:
            return "celery pool process"
        return service.name


def _celery_installed(python: str) -> bool:
    return subprocess.run([python, "-c", "import celery, redis"], capture_output=True, timeout=60).returncode == 0


class OfWatchdogContender(Contender):
    """OpenFaaS's of-watchdog in http mode, proxying to the bare Node server that it starts itself."""

    def __init__(self, context: RunContext) -> None:
        super().__init__(name="of-watchdog", label="of-watchdog (http mode) + Node", kind="peer", context=context)
        self.binary = context.cache_dir / "bin" / "of-watchdog"
        self.version: str | None = None

    def check_available(self) -> None:
        if not self.binary.exists():
            self._install()
        self.version = _go_module_version(self.binary) or "unknown"

    def _install(self) -> None:
        go = shutil.which("go")
        if go is None:
            raise Unavailable("Go is not installed, so `go install` cannot build of-watchdog")
        reference = f"{OF_WATCHDOG_MODULE}@{self.context.of_watchdog_version}"
        print(f"of-watchdog is missing: go install {reference} (into {self.binary.parent})", flush=True)
        self.binary.parent.mkdir(parents=True, exist_ok=True)
        environment = {**os.environ, "GOBIN": str(self.binary.parent)}
        try:
            completed = subprocess.run([go, "install", reference], capture_output=True, text=True,
                                       env=environment, timeout=600)
        except subprocess.TimeoutExpired:
            raise Unavailable(f"go install {reference} timed out after 600s") from None
        if completed.returncode != 0 or not self.binary.exists():
            message = " ".join(completed.stderr.split())
            raise Unavailable(f"go install {reference} failed with exit code {completed.returncode}: {message[:600]}")

    def start(self) -> None:
        port = free_port()
        upstream_port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        # NOTE: never run here, because the Go module proxy refused the module. The variable names
        # are of-watchdog's http-mode settings; it may listen on every interface at `port`, but
        # the harness sends requests to 127.0.0.1 only.
        environment = {
            **os.environ,
            "mode": "http",
            "port": str(port),
            "upstream_url": f"http://127.0.0.1:{upstream_port}",
            "fprocess": " ".join(bare_node_argv(self.context.node, upstream_port)),
            "exec_timeout": "30s",
            "read_timeout": "30s",
            "write_timeout": "30s",
            "prefix_logs": "false",
        }
        self.settings = {key: environment[key] for key in ("mode", "upstream_url", "fprocess", "exec_timeout")}
        self._start_service("of-watchdog", [str(self.binary)], env=environment)

    def role_of(self, service: Service, info: ProcessInfo, snapshot: Mapping[int, ProcessInfo]) -> str:
        return "of-watchdog" if info.pid == service.pid else "node server"


def _go_module_version(binary: Path) -> str | None:
    go = shutil.which("go")
    if go is None:
        return None
    completed = subprocess.run([go, "version", "-m", str(binary)], capture_output=True, text=True, timeout=30)
    for line in completed.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "mod" and parts[1] == OF_WATCHDOG_MODULE:
            return parts[2]
    return None


ALL_CONTENDERS = ("embedded", "redis", "rabbitmq", "kafka", "bare-node", "celery", "of-watchdog")


def create_contender(name: str, context: RunContext) -> Contender:
    if name in BOOTHBY_TRANSPORTS:
        return BoothbyContender(name, context, BOOTHBY_TRANSPORTS.index(name))
    if name == "bare-node":
        return BareNodeContender(context)
    if name == "celery":
        return CeleryContender(context)
    if name == "of-watchdog":
        return OfWatchdogContender(context)
    raise BenchError(f"unknown contender {name!r}; expected one of {', '.join(ALL_CONTENDERS)}")
