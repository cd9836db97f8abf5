"""Start real Boothby processes for tests and stop them by pid."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = Path(__file__).resolve().parent / "functions"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def toml_value(value: Any) -> str:
    """Render a Python value as TOML (strings, numbers, booleans, lists and inline tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def write_config(directory: Path, functions: dict[str, dict[str, Any]], transport: str = "embedded",
                 log_sinks: tuple[str, ...] = ("stdout",), port: int | None = None,
                 sections: dict[str, dict[str, Any]] | None = None) -> Path:
    """Write a boothby.toml into ``directory``; function sources default to folders under tests/functions."""
    port = port or free_port()
    lines = [
        "[boothby]",
        f"transport = {toml_value(transport)}",
        f"log_sinks = {toml_value(list(log_sinks))}",
        "",
    ]
    all_sections: dict[str, dict[str, Any]] = {"grappler": {"bind": f"127.0.0.1:{port}"}}
    all_sections.setdefault("transport.embedded", {"socket": str(directory / "embedded.sock")})
    for name, values in (sections or {}).items():
        all_sections.setdefault(name, {}).update(values)
    for name, values in all_sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
        lines.append("")
    for name, values in functions.items():
        values = {"handler": "index.handler", "runtime": "node", **values}
        if "source" in values and not os.path.isabs(values["source"]):
            values["source"] = str(FUNCTIONS / values["source"])
        lines.append(f"[functions.{name}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
        lines.append("")
    path = directory / "boothby.toml"
    path.write_text("\n".join(lines))
    return path


class BoothbyProcess:
    """One ``boothby`` command running as a child process, with its output in a log file."""

    def __init__(self, args: list[str], config: Path, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log_path = log_path
        self._log = open(log_path, "wb")
        # A session of its own, so that stop() can end the children of `boothby up` as well.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "boothby", "-c", str(config), *args],
            stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, start_new_session=True,
        )
        self.pid = self.process.pid

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            if self.process.poll() is not None:
                raise AssertionError(f"process exited with {self.process.returncode} before logging {text!r}:\n{self.log()[-4000:]}")
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not logged within {timeout}s:\n{self.log()[-4000:]}")

    def signal(self, signum: int) -> None:
        if self.process.poll() is None:
            os.kill(self.pid, signum)

    def stop(self, timeout: float = 20.0) -> int:
        """Send SIGTERM and wait; after ``timeout`` kill the process and everything it started."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        try:
            os.killpg(self.pid, signal.SIGKILL)  # children left behind by a process that did not stop cleanly
        except ProcessLookupError:
            pass
        self._log.close()
        return self.process.returncode


def wait_for_http(base_url: str, process: BoothbyProcess | None = None, timeout: float = 30.0,
                  function_path: str | None = None) -> None:
    """Wait until the grappler responds to its health check (and, if given, a request to ``function_path``)."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.process.poll() is not None:
            raise AssertionError(f"boothby exited with {process.process.returncode}:\n{process.log()[-4000:]}")
        try:
            response = httpx.get(base_url + (function_path or "/_boothby/health"), timeout=5)
            if response.status_code < 500:
                return
            last_error = AssertionError(f"{response.status_code} {response.text}")
        except httpx.HTTPError as error:
            last_error = error
        time.sleep(0.05)
    log = process.log()[-4000:] if process else ""
    raise AssertionError(f"{base_url} not ready within {timeout}s: {last_error}\n{log}")


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip()
