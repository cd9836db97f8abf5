"""Fixtures shared by the whole suite: real Boothby processes on free loopback ports."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from .helpers import BoothbyProcess, wait_for_http, write_config


class Cluster:
    """Starts ``boothby`` processes for one test and stops them all, by pid, at the end."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.processes: list[BoothbyProcess] = []
        self.config: Path | None = None
        self.base_url = ""

    def configure(self, functions: dict[str, dict[str, Any]], **options: Any) -> Path:
        self.config = write_config(self.directory, functions, **options)
        port = self.config.read_text().split('bind = "127.0.0.1:')[1].split('"')[0]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.config

    def start(self, command: str = "up", env: dict[str, str] | None = None, wait: bool = True) -> BoothbyProcess:
        assert self.config is not None, "call configure() first"
        name = f"{command}-{len(self.processes)}"
        process = BoothbyProcess([command], self.config, self.directory / f"{name}.log", env)
        self.processes.append(process)
        if wait and command in ("up", "deflector"):
            process.wait_for_log("deflector ready")
        if wait and command in ("up", "grappler"):
            wait_for_http(self.base_url, process)
        return process

    def logs(self) -> str:
        return "\n".join(process.log() for process in self.processes)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path)
    yield cluster
    cluster.stop()


@pytest.fixture
def serve(cluster: Cluster) -> Callable[..., str]:
    """Start ``boothby up`` serving ``functions`` and return its base URL."""

    def start(functions: dict[str, dict[str, Any]], **options: Any) -> str:
        cluster.configure(functions, **options)
        cluster.start("up")
        return cluster.base_url

    return start
