"""Describe the machine and the versions of everything a benchmark run used."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _run(argv: list[str], timeout: float = 20.0) -> str | None:
    """Return the stripped standard output of a command, or None when it cannot run or fails."""
    try:
        completed = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    if completed.returncode != 0:
        return None
    return completed.stdout.strip()


def describe_machine() -> dict:
    """Return the CPU model, core counts, memory, kernel and operating system."""
    cpu_model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    memory_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kib = int(line.split()[1])
    os_name = "unknown"
    os_release = Path("/etc/os-release")
    if os_release.exists():
        match = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', os_release.read_text(), re.MULTILINE)
        if match:
            os_name = match.group(1)
    return {
        "cpu_model": cpu_model,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "memory_bytes": memory_kib * 1024,
        "kernel": platform.release(),
        "os": os_name,
        "architecture": platform.machine(),
    }


def _distribution_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _redis_version() -> str | None:
    try:
        import redis
    except ImportError:
        return None
    try:
        client = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=2, socket_connect_timeout=2)
        version = client.info("server").get("redis_version")
        client.close()
        return f"{version} (the server on 127.0.0.1:6379)"
    except redis.RedisError:
        return None


def _kafka_version() -> str | None:
    # scripts/brokers/kafka.sh runs the jars it copied under .cache/kafka/kafka-VERSION/libs.
    for jar in sorted(REPO.glob(".cache/kafka/kafka-*/libs/kafka_2.13-*.jar")):
        return jar.name.removeprefix("kafka_2.13-").removesuffix(".jar")
    return None


def _git_revision() -> str | None:
    commit = _run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    if commit is None:
        return None
    changes = _run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"])
    return f"{commit} with uncommitted changes" if changes else commit


def describe_versions(wrk_version: str | None, of_watchdog_version: str | None) -> dict:
    """Return the version of each component, or None where it is not installed or not reachable."""
    node = shutil.which("node")
    rabbitmq = _run(["dpkg-query", "-W", "-f", "${Version}", "rabbitmq-server"])
    return {
        "python": platform.python_version(),
        "node": _run([node, "--version"]) if node else None,
        "boothby": _distribution_version("boothby-core"),
        "boothby_git": _git_revision(),
        "gunicorn": _distribution_version("gunicorn"),
        "uvicorn": _distribution_version("uvicorn"),
        "redis": _redis_version(),
        "rabbitmq": f"{rabbitmq} (Debian package rabbitmq-server)" if rabbitmq else None,
        "kafka": _kafka_version(),
        "celery": _distribution_version("celery"),
        "of_watchdog": of_watchdog_version,
        "wrk": wrk_version,
    }


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]
