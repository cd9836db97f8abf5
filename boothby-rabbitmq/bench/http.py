"""Measure the latency of full HTTP requests through a grappler and a deflector over a transport.

Starts ``boothby deflector`` and ``boothby grappler`` as separate processes with a temporary
configuration serving ``bench/functions/trivial`` (a short text, no logging), sends requests one at a time over one keep-alive
connection from a minimal socket client, and prints percentiles. Both processes are stopped by
pid at the end.

    python bench/http.py --transport rabbitmq --count 5000

Only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

BOOTHBY = [sys.executable, "-m", "boothby"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_config(directory: Path, transport: str, port: int, workers: int, prefix: str) -> Path:
    text = f"""
[boothby]
transport = "{transport}"
log_sinks = ["stdout"]

[grappler]
bind = "127.0.0.1:{port}"

[transport.rabbitmq]
queue_prefix = "{prefix}"

[transport.embedded]
socket = "{directory / 'embedded.sock'}"

[functions.hello]
source = "{Path(__file__).resolve().parent / 'functions' / 'trivial'}"
handler = "index.handler"
timeout = "10s"
workers = {workers}
"""
    path = directory / "boothby.toml"
    path.write_text(text)
    return path


def request_once(connection: socket.socket, request: bytes) -> int:
    """Send one request and read the whole response; return the status code."""
    connection.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            raise ConnectionError("the grappler closed the connection")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = connection.recv(65536)
        if not chunk:
            raise ConnectionError("the grappler closed the connection")
        body += chunk
    return int(head.split(b" ", 2)[1])


def process_tree(root: int) -> list[int]:
    """Return ``root`` and every descendant, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """Sum the user and system CPU time of ``pids`` so far, in seconds."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def delete_queue(name: str) -> None:
    """Delete the durable function queue the run declared, so runs leave nothing behind in the broker."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters("amqp://guest:guest@127.0.0.1:5672/%2F"))
    try:
        connection.channel().queue_delete(name)
    finally:
        connection.close()


def run_wrk(port: int, connections: int, duration: float, processes: list[subprocess.Popen[bytes]]) -> None:
    """Measure throughput with wrk over ``connections`` keep-alive connections and print it with the CPU used."""
    url = f"http://127.0.0.1:{port}/?name=bench"
    subprocess.run(["wrk", "-t1", f"-c{connections}", "-d2s", url], check=True, capture_output=True)  # warm-up
    trees = {role: process_tree(process.pid) for role, process in zip(("deflector", "grappler"), processes)}
    cpu_before = {role: cpu_seconds(pids) for role, pids in trees.items()}
    output = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency", url],
                            check=True, capture_output=True, text=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([0-9.]+)", output).group(1))
    total = int(re.search(r"(\d+) requests in", output).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    p50 = re.search(r"50%\s+(\S+)", output).group(1)
    cpu = {role: (cpu_seconds(pids) - cpu_before[role]) / total * 1e6 for role, pids in trees.items()}
    print(f"connections={connections} requests/s={rate:.0f} p50={p50} non-2xx={errors.group(1) if errors else 0}  "
          "CPU per request: " + ", ".join(f"{role} {micros:.0f} us" for role, micros in cpu.items()))


def wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the grappler did not listen on 127.0.0.1:{port} within {timeout}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--transport", default="rabbitmq")
    parser.add_argument("--count", type=int, default=5000, help="measured requests, after 10%% warm-up")
    parser.add_argument("--broker-pid", type=int, help="also report the CPU time of this broker process per request")
    parser.add_argument("--profile-deflector", metavar="FILE",
                        help="run the deflector under cProfile and write its statistics to FILE")
    parser.add_argument("--connections", type=int, default=1,
                        help="more than 1: measure throughput with wrk over this many connections instead")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of each wrk measurement")
    parser.add_argument("--workers", type=int, default=1, help="Node workers of the function")
    args = parser.parse_args()

    directory = Path(tempfile.mkdtemp(prefix="boothby-bench-"))
    port = free_port()
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    config = write_config(directory, args.transport, port, args.workers, prefix)
    processes = []
    try:
        for role in ("deflector", "grappler"):
            log = open(directory / f"{role}.log", "wb")
            command = BOOTHBY
            if role == "deflector" and args.profile_deflector:
                command = [sys.executable, "-m", "cProfile", "-o", args.profile_deflector, "-m", "boothby"]
            processes.append(subprocess.Popen([*command, "--log-level", "warning", "-c", str(config), role],
                                              stdout=log, stderr=subprocess.STDOUT))
        wait_for_port(port, 60)
        if args.connections > 1:
            run_wrk(port, args.connections, args.duration, processes)
            return
        request = f"GET /?name=bench HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        with socket.create_connection(("127.0.0.1", port)) as connection:
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            deadline = time.monotonic() + 60
            while request_once(connection, request) != 200:
                if time.monotonic() > deadline:
                    raise SystemExit(f"no 200 response within 60s; logs in {directory}")
                time.sleep(0.1)
            samples = []
            warm_up = args.count // 10
            trees = {role: process_tree(process.pid) for role, process in zip(("deflector", "grappler"), processes)}
            if args.broker_pid:
                trees["broker"] = [args.broker_pid]
            cpu_before: dict[str, float] = {}
            for index in range(args.count + warm_up):
                if index == warm_up:
                    cpu_before = {role: cpu_seconds(pids) for role, pids in trees.items()}
                start = time.perf_counter()
                status = request_once(connection, request)
                elapsed = time.perf_counter() - start
                if status != 200:
                    raise SystemExit(f"request {index} returned status {status}; logs in {directory}")
                if index >= warm_up:
                    samples.append(elapsed * 1000)
            cpu_per_request = {
                role: (cpu_seconds(pids) - cpu_before[role]) / args.count * 1e6 for role, pids in trees.items()
            }
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
        if args.transport == "rabbitmq":
            delete_queue(f"{prefix}.invoke.hello")
    samples.sort()
    print(f"transport={args.transport} n={len(samples)}  p50={statistics.median(samples):.3f} ms  "
          f"p90={samples[int(len(samples) * 0.9)]:.3f} ms  p99={samples[int(len(samples) * 0.99)]:.3f} ms  "
          "CPU per request: " + ", ".join(f"{role} {micros:.0f} us" for role, micros in cpu_per_request.items()))


if __name__ == "__main__":
    main()
