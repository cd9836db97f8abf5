"""Run wrk, the HTTP load generator, and read the results that wrk_report.lua prints."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import BenchError

REPORT_SCRIPT = Path(__file__).resolve().parent / "wrk_report.lua"
RESULT_PREFIX = "BENCH_RESULT "
TIMEOUT_SECONDS = 5
"""wrk's per-request timeout: a response slower than this counts as a timeout error."""


@dataclass(frozen=True)
class Load:
    """One wrk run: where to send requests, how many connections and for how long."""

    url: str
    connections: int
    duration: float
    threads: int = 1
    body_file: Path | None = None
    content_type: str = "text/plain"


def ensure_wrk() -> str:
    """Return the path of wrk, installing Debian's package when it is missing; raise BenchError if that fails."""
    path = shutil.which("wrk")
    if path:
        return path
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise BenchError("wrk is not installed and cannot be installed here (needs root and apt-get); "
                         "install it with `apt-get install -y wrk`")
    print("wrk is missing: installing Debian's package (apt-get install -y wrk)", flush=True)
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], capture_output=True, text=True,
                             env=environment, timeout=600)
    if install.returncode != 0:
        # The package lists may be missing on a new machine: refresh them once and try again.
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, text=True, env=environment, timeout=600)
        install = subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], capture_output=True, text=True,
                                 env=environment, timeout=600)
    path = shutil.which("wrk")
    if install.returncode != 0 or not path:
        raise BenchError(f"apt-get install -y wrk failed with exit code {install.returncode}:\n{install.stderr[-2000:]}")
    return path


def wrk_version(binary: str) -> str:
    completed = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    first_line = (completed.stdout or completed.stderr).splitlines()[:1]
    return first_line[0].split(" Copyright")[0].strip() if first_line else "unknown"


def run_wrk(binary: str, load: Load) -> dict:
    """Run wrk once and return the parsed ``BENCH_RESULT`` record, plus ``rps`` and ``errors.total``.

    Raises BenchError when wrk fails or prints no result.
    """
    duration = max(1, round(load.duration))
    argv = [binary, f"-t{min(load.threads, load.connections)}", f"-c{load.connections}", f"-d{duration}s",
            f"--timeout={TIMEOUT_SECONDS}s", "-s", str(REPORT_SCRIPT), load.url]
    environment = {**os.environ, "BENCH_CONTENT_TYPE": load.content_type}
    environment.pop("BENCH_BODY_FILE", None)
    if load.body_file is not None:
        environment["BENCH_BODY_FILE"] = str(load.body_file)
    completed = subprocess.run(argv, capture_output=True, text=True, env=environment, timeout=duration + 60)
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if completed.returncode != 0 or not lines:
        raise BenchError(f"wrk exited with code {completed.returncode} and no result for {load.url}:\n"
                         f"{completed.stdout[-1500:]}{completed.stderr[-1500:]}")
    result = json.loads(lines[-1][len(RESULT_PREFIX):])
    result["errors"]["total"] = sum(result["errors"].values())
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6) if result["duration_us"] else 0.0
    return result
