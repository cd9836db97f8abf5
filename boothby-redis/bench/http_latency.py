"""Measure sequential HTTP request latency through Boothby with the embedded and the redis transport.

Starts ``boothby up`` with a one-line function for each transport in turn (alternating, to even
out noise from other work on the machine), sends requests one at a time over one keep-alive
connection and prints p50, p90 and p99. It also prints the CPU time (user + system, from
/proc, Linux only) that the grappler worker, the deflector and the Node.js worker spent per
request, which varies much less with the machine's load than latency does. Everything listens
on 127.0.0.1 only.

Usage: python bench/http_latency.py [--count N] [--rounds R] [--transport embedded|redis ...]
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FUNCTION = """exports.handler = async (event) => ({statusCode: 200, body: "ok"});\n"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


KEY_PREFIX = f"boothby-bench-{secrets.token_hex(4)}"


def write_config(directory: Path, transport: str, port: int, redis_url: str = "redis://127.0.0.1:6379/0") -> Path:
    (directory / "fn").mkdir(exist_ok=True)
    (directory / "fn" / "index.js").write_text(FUNCTION)
    config = directory / f"{transport}.toml"
    config.write_text(f"""
[boothby]
transport = "{transport}"
log_sinks = ["stdout"]

[grappler]
bind = "127.0.0.1:{port}"

[transport.embedded]
socket = "{directory}/embedded.sock"

[transport.redis]
url = "{redis_url}"
key_prefix = "{KEY_PREFIX}"

[functions.ok]
source = "{directory}/fn"
handler = "index.handler"
workers = 1
""")
    return config


class KeepAliveClient:
    """A minimal HTTP/1.1 client on one connection, so that client overhead stays small and constant."""

    def __init__(self, port: int) -> None:
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.request = b"GET /ok HTTP/1.1\r\nHost: bench\r\n\r\n"

    def _receive(self) -> bytes:
        chunk = self.socket.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        return chunk

    def get(self) -> int:
        self.socket.sendall(self.request)
        data = b""
        while b"\r\n\r\n" not in data:
            data += self._receive()
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = next(int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length"))
        while len(body) < length:
            body += self._receive()
        return int(lines[0].split(b" ")[1])


def wait_until_serving(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"boothby exited with {process.returncode}")
        try:
            client = KeepAliveClient(port)
            if client.get() == 200:
                client.socket.close()
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"boothby did not serve on port {port} within {timeout:g}s")


def cpu_seconds(pid: int) -> float:
    """Return the user + system CPU time of process ``pid`` in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pids(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in children.read_text().split()] if children.exists() else []


def roles(up_pid: int) -> dict[str, int]:
    """Return the pids of the grappler worker, the deflector and its first Node.js worker under ``boothby up``."""
    found = {}
    for child in child_pids(up_pid):
        command = Path(f"/proc/{child}/cmdline").read_bytes()
        if b"deflector" in command:
            found["deflector"] = child
            found["node"] = next(pid for pid in child_pids(child) if b"node" in Path(f"/proc/{pid}/cmdline").read_bytes())
        elif b"grappler" in command:
            found["grappler"] = child_pids(child)[0]
    return found


def measure(directory: Path, transport: str, count: int, redis_url: str) -> tuple[list[float], dict[str, float]]:
    port = free_port()
    config = write_config(directory, transport, port, redis_url)
    log = open(directory / f"{transport}.log", "ab")
    process = subprocess.Popen([sys.executable, "-m", "boothby", "-c", str(config), "--log-level", "warning", "up"],
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_serving(port, process)
        client = KeepAliveClient(port)
        for _ in range(300):
            client.get()
        processes = roles(process.pid)
        cpu_before = {role: cpu_seconds(pid) for role, pid in processes.items()}
        samples = []
        for _ in range(count):
            began = time.perf_counter()
            status = client.get()
            samples.append(time.perf_counter() - began)
            if status != 200:
                raise SystemExit(f"{transport}: got HTTP {status}")
        cpu_per_request = {role: (cpu_seconds(pid) - cpu_before[role]) / count for role, pid in processes.items()}
        client.socket.close()
        return samples, cpu_per_request
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        log.close()


def delete_keys(url: str) -> None:
    """Delete the keys this run left in Redis (the stream and its consumer group)."""
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{KEY_PREFIX}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000, help="measured requests per round (after 300 warm-up ones)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per transport, alternating between transports")
    parser.add_argument("--transport", action="append", choices=["embedded", "redis"], help="repeatable; default both")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0",
                        help="Redis server on this machine, for example unix:///tmp/redis.sock")
    args = parser.parse_args()
    transports = args.transport or ["embedded", "redis"]
    with tempfile.TemporaryDirectory(prefix="boothby-bench-") as name:
        directory = Path(name)
        for round_number in range(1, args.rounds + 1):
            for transport in transports:
                samples, cpu_per_request = measure(directory, transport, args.count, args.redis_url)
                samples.sort()
                n = len(samples)
                cpu = " ".join(f"{role}={seconds * 1e6:.0f}us" for role, seconds in sorted(cpu_per_request.items()))
                print(f"round {round_number} {transport:8} n={n} p50={samples[n // 2] * 1e6:5.0f}us "
                      f"p90={samples[int(n * 0.9)] * 1e6:5.0f}us p99={samples[int(n * 0.99)] * 1e6:5.0f}us "
                      f"cpu/request: {cpu}", flush=True)
        if "redis" in transports:
            delete_keys(args.redis_url)
        if os.environ.get("BOOTHBY_BENCH_KEEP_LOGS"):
            for log in directory.glob("*.log"):
                print(log.read_text()[-3000:])


if __name__ == "__main__":
    main()
