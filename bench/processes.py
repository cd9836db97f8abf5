"""Start, inspect and stop the processes of a benchmark run, always by pid.

CPU time and memory come from /proc: ``utime + stime`` of /proc/PID/stat and ``VmRSS`` of
/proc/PID/status, so this module needs Linux.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

logger = logging.getLogger("bench.processes")

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcessInfo:
    """One process as /proc shows it at one moment."""

    pid: int
    ppid: int
    name: str
    cpu_ticks: int
    start_ticks: int
    cmdline: str


def read_process(pid: int) -> ProcessInfo | None:
    """Read one process from /proc; return None when it has exited."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The name is in parentheses and may itself contain spaces or parentheses, so split at the last ")".
    name = stat[stat.index("(") + 1:stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2:].split()
    # fields[0] is field 3 of proc(5): state, then ppid (4), ..., utime (14), stime (15), starttime (22).
    return ProcessInfo(
        pid=pid,
        ppid=int(fields[1]),
        name=name,
        cpu_ticks=int(fields[11]) + int(fields[12]),
        start_ticks=int(fields[19]),
        cmdline=cmdline.replace(b"\0", b" ").decode("utf-8", "replace").strip(),
    )


def all_processes() -> dict[int, ProcessInfo]:
    processes = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = read_process(int(entry))
            if info is not None:
                processes[info.pid] = info
    return processes


def process_tree(root_pid: int, processes: Mapping[int, ProcessInfo] | None = None) -> list[ProcessInfo]:
    """Return ``root_pid`` and all its descendants, parents before children; empty when it has exited."""
    processes = all_processes() if processes is None else processes
    if root_pid not in processes:
        return []
    children: dict[int, list[ProcessInfo]] = {}
    for info in processes.values():
        children.setdefault(info.ppid, []).append(info)
    tree = [processes[root_pid]]
    index = 0
    while index < len(tree):
        tree.extend(sorted(children.get(tree[index].pid, []), key=lambda info: info.pid))
        index += 1
    return tree


def rss_bytes(pid: int) -> int | None:
    """Return the resident set size of ``pid`` in bytes, or None when it has exited."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def _is_same_process(info: ProcessInfo) -> bool:
    """Tell whether ``info.pid`` still names the process seen earlier, not a new one that reuses the pid."""
    current = read_process(info.pid)
    return current is not None and current.start_ticks == info.start_ticks


class Service:
    """A process started by the harness, with its output in a log file.

    It runs in a session of its own, so Ctrl-C in the terminal reaches only the harness, which
    then stops every service in order.
    """

    def __init__(self, name: str, argv: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.started_at = time.monotonic()
        self.popen = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None, cwd=str(cwd) if cwd else None, start_new_session=True,
        )
        self.pid = self.popen.pid
        logger.debug("started %s: pid %d: %s", name, self.pid, " ".join(self.argv))

    def running(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, characters: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-characters:]
        except FileNotFoundError:
            return ""

    def stop(self, grace: float = 10.0) -> None:
        """Send SIGTERM, wait up to ``grace`` seconds, then SIGKILL the process and any descendant left.

        The descendants are listed before the SIGTERM, because once the root exits they are
        re-parented and can no longer be found from it.
        """
        tree = process_tree(self.pid) if self.running() else []
        if self.running():
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                logger.warning("%s (pid %d) did not exit within %.0fs of SIGTERM; sending SIGKILL", self.name, self.pid, grace)
                self.popen.kill()
                self.popen.wait()
        # Children get a moment to finish their own shutdown (the deflector stops its workers itself).
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and any(_is_same_process(info) for info in tree[1:]):
            time.sleep(0.05)
        for info in tree[1:]:
            if _is_same_process(info):
                logger.warning("%s: pid %d (%s) outlived its parent; sending SIGKILL", self.name, info.pid, info.name)
                try:
                    os.kill(info.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self._log.close()


class ServiceSet:
    """Every service the harness started, stopped in reverse order of starting."""

    def __init__(self) -> None:
        self.services: list[Service] = []

    def start(self, name: str, argv: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None,
              cwd: Path | None = None) -> Service:
        service = Service(name, argv, log_path, env, cwd)
        self.services.append(service)
        return service

    def stop(self, service: Service, grace: float = 10.0) -> None:
        service.stop(grace)
        if service in self.services:
            self.services.remove(service)

    def stop_all(self) -> None:
        while self.services:
            service = self.services.pop()
            try:
                service.stop()
            except OSError as error:
                logger.error("stopping %s (pid %d) failed: %s", service.name, service.pid, error)
