"""Register the ``node`` runtime: start ``worker.js`` with the configured Node.js binary."""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from boothby import hookimpl
from boothby.config import FunctionConfig
from boothby.errors import RuntimeUnavailable
from boothby.runtime import Runtime, WorkerSpec

MINIMUM_MAJOR = 20
JS_DIR = Path(__file__).parent / "js"


@lru_cache(maxsize=8)
def _node_version(binary: str) -> str:
    completed = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10, check=True)
    return completed.stdout.strip()


class NodeRuntime(Runtime):
    """Node.js workers running ``js/worker.js``.

    Settings from ``[runtime.node]``: ``node`` (path of the binary, default ``node`` from PATH)
    and ``options`` (extra command-line options for Node, a list of strings).
    """

    name = "node"

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        self.binary = str(settings.get("node", "node"))
        self.options = [str(option) for option in settings.get("options", [])]

    def check(self) -> None:
        path = shutil.which(self.binary)
        if path is None:
            raise RuntimeUnavailable(
                f"the node runtime needs Node.js {MINIMUM_MAJOR} or later, but {self.binary!r} was not found; "
                "install Node.js or set [runtime.node] node to its path", runtime=self.name,
            )
        try:
            version = _node_version(path)
        except (OSError, subprocess.SubprocessError) as error:
            raise RuntimeUnavailable(f"running {path} --version failed: {error}", runtime=self.name) from error
        match = re.match(r"v(\d+)\.", version)
        if not match or int(match.group(1)) < MINIMUM_MAJOR:
            raise RuntimeUnavailable(
                f"the node runtime needs Node.js {MINIMUM_MAJOR} or later; {path} is {version or 'unknown'}. "
                f"Install Node.js {MINIMUM_MAJOR}+ or set [runtime.node] node to a newer binary", runtime=self.name,
            )
        if not (JS_DIR / "node_modules" / "avsc").is_dir():
            raise RuntimeUnavailable(
                f"the worker's JavaScript dependencies are missing in {JS_DIR}; run `npm ci --omit=dev` there "
                "(the wheel ships them; a source checkout needs `make install`)", runtime=self.name,
            )
        self.binary = path

    def prepare(self, function: FunctionConfig, runtime_dir: Path) -> None:
        # Workers may run under ids that cannot read this package's folder, so they get a copy.
        shutil.copytree(JS_DIR, runtime_dir / "node", ignore=shutil.ignore_patterns("test", "test-support"))

    def worker_spec(self, function: FunctionConfig, code_dir: Path) -> WorkerSpec:
        function_root = code_dir.parent
        argv = [
            self.binary,
            f"--max-old-space-size={function.memory_mb}",
            # Node's permission model: reads only below the function's own folder (code, runtime
            # copy, schemas), writes only to its temp folder, no child processes or worker
            # threads unless the function's configuration allows them.
            "--experimental-permission",
            f"--allow-fs-read={function_root}",
            f"--allow-fs-write={function_root / 'tmp'}",
            "--disable-warning=ExperimentalWarning",
        ]
        if function.allow_child_processes:
            argv.append("--allow-child-process")
        if function.allow_worker_threads:
            argv.append("--allow-worker")
        argv += [*self.options, str(function_root / "runtime" / "node" / "worker.js")]
        return WorkerSpec(argv=argv, env={"NODE_ENV": "production"})


@hookimpl
def boothby_register_runtimes(register):
    register("node", NodeRuntime)
