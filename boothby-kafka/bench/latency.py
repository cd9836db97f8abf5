"""Measure the HTTP latency of a trivial function through Boothby, for the embedded and kafka transports.

Each variant runs ``boothby up`` from this checkout's virtualenv on a free port of 127.0.0.1
with a fresh topic prefix and a function with one worker slot. It sends warm-up requests, then
``--requests`` sequential GETs over one keep-alive connection per client (``--clients``,
default 1), and prints p50, p90 and p99 in milliseconds. Variants run in turn for ``--rounds``
rounds, so that a change in machine load affects every variant alike. The table shows the
median of the rounds' percentiles.

    .venv/bin/python boothby-kafka/bench/latency.py --rounds 3 --requests 1000 \\
        --variant embedded --variant kafka --variant kafka:fetch_max_wait_ms=500

A variant is ``embedded`` or ``kafka`` followed by ``:KEY=VALUE,...`` settings for
``[transport.kafka]`` (values are TOML). The broker must run on 127.0.0.1:9092
(``scripts/brokers/kafka.sh start``); this script talks to no other address.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

HANDLER = 'exports.handler = async () => ({ statusCode: 200, body: "ok" });\n'


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_config(folder: Path, port: int, variant: str) -> Path:
    transport, _, extra = variant.partition(":")
    function = folder / "function"
    function.mkdir(exist_ok=True)
    (function / "index.js").write_text(HANDLER)
    lines = [
        "[boothby]", f'transport = "{transport}"', 'log_sinks = ["stdout"]', "",
        "[grappler]", f'bind = "127.0.0.1:{port}"', "",
        "[transport.embedded]", f'socket = "{folder / "embedded.sock"}"', "",
        "[transport.kafka]", f'topic_prefix = "bench-{uuid.uuid4().hex[:8]}"',
    ]
    lines += [setting.strip() for setting in extra.split(",") if setting.strip()]
    lines += ["", "[functions.bench]", f'source = "{function}"', 'handler = "index.handler"', "workers = 1", ""]
    config = folder / "boothby.toml"
    config.write_text("\n".join(lines))
    return config


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"boothby exited with {process.returncode} before it was ready")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not respond with 200 within {timeout:g}s")


def call_repeatedly(url: str, count: int) -> list[float]:
    """Send ``count`` sequential GETs over one keep-alive connection; return their latencies in milliseconds."""
    latencies = []
    with httpx.Client(timeout=10) as client:
        for _ in range(count):
            started = time.perf_counter()
            response = client.get(url)
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"HTTP {response.status_code}: {response.text[:200]}")
    return latencies


def measure(variant: str, requests: int, warmup: int, clients: int) -> list[float]:
    """Return the latencies, in milliseconds, of ``requests`` calls per client through one ``boothby up``."""
    with tempfile.TemporaryDirectory(prefix="boothby-kafka-bench-") as directory:
        folder = Path(directory)
        os.chmod(folder, 0o755)
        port = free_port()
        config = write_config(folder, port, variant)
        log = open(folder / "up.log", "wb")
        process = subprocess.Popen([sys.executable, "-m", "boothby", "-c", str(config), "--log-level", "warning", "up"],
                                   stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}/"
            wait_ready(url, process)
            call_repeatedly(url, warmup)
            with ThreadPoolExecutor(clients) as pool:
                per_client = list(pool.map(lambda _: call_repeatedly(url, requests), range(clients)))
            return [latency for latencies in per_client for latency in latencies]
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


def percentiles(latencies: list[float]) -> tuple[float, float, float]:
    cuts = statistics.quantiles(latencies, n=100)
    return cuts[49], cuts[89], cuts[98]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", help="embedded, kafka, or kafka:KEY=VALUE,... (repeatable)")
    parser.add_argument("--requests", type=int, default=1000, help="measured requests per variant and round")
    parser.add_argument("--warmup", type=int, default=200, help="requests sent before measuring")
    parser.add_argument("--rounds", type=int, default=3, help="times every variant is measured, in turn")
    parser.add_argument("--clients", type=int, default=1,
                        help="concurrent clients, each sending --requests sequential requests (default 1)")
    args = parser.parse_args()
    variants = args.variant or ["embedded", "kafka"]

    results: dict[str, list[tuple[float, float, float]]] = {variant: [] for variant in variants}
    for round_number in range(1, args.rounds + 1):
        for variant in variants:
            p50, p90, p99 = percentiles(measure(variant, args.requests, args.warmup, args.clients))
            results[variant].append((p50, p90, p99))
            print(f"round {round_number} {variant}: p50 {p50:.2f} p90 {p90:.2f} p99 {p99:.2f} ms "
                  f"(load average {os.getloadavg()[0]:.2f})", flush=True)

    print(f"\nmedian of {args.rounds} rounds; {args.clients} clients, {args.requests} sequential requests each; in ms")
    print(f"{'variant':50} {'p50':>7} {'p90':>7} {'p99':>7}")
    for variant, rounds in results.items():
        p50, p90, p99 = (statistics.median(values) for values in zip(*rounds, strict=True))
        print(f"{variant:50} {p50:7.2f} {p90:7.2f} {p99:7.2f}")


if __name__ == "__main__":
    main()
