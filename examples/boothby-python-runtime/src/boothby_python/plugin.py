"""The ``python`` runtime plugin: checks the interpreter and builds the command that starts a worker."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

import boothby
from boothby.config import FunctionConfig
from boothby.errors import ConfigError, RuntimeUnavailable
from boothby.runtime import Runtime, WorkerSpec

log = logging.getLogger(__name__)

MIN_VERSION = (3, 11)
WORKER_DIR = Path(__file__).resolve().parent / "worker"
CHECK_TIMEOUT = 30.0
# As root, Boothby starts each worker under its own unprivileged user id. The check therefore runs
# the interpreter as "nobody", to catch an interpreter or a fastavro that other users cannot read.
UNPRIVILEGED_ID = 65534
PROBE = """\
import json, sys
report = {"executable": sys.executable, "version": list(sys.version_info[:3]), "fastavro": None, "fastavro_error": None}
try:
    import fastavro
    report["fastavro"] = fastavro.__version__
except Exception as error:
    report["fastavro_error"] = f"{type(error).__name__}: {error}"
print(json.dumps(report))
"""


def read_settings(settings: Mapping[str, Any]) -> tuple[str, list[str]]:
    """Validate ``[runtime.python]`` and return the interpreter and its extra options.

    Raises ``ConfigError`` listing every invalid or unknown key.
    """
    problems = []
    python = settings.get("python", sys.executable)
    if not isinstance(python, str) or not python:
        problems.append(f"[runtime.python] python: expected the path or name of a Python interpreter, got {python!r}")
    options = settings.get("options", [])
    if isinstance(options, str):
        options = options.split()
    if not isinstance(options, list) or not all(isinstance(option, str) for option in options):
        problems.append(f"[runtime.python] options: expected a list of command-line options, got {options!r}")
    unknown = sorted(set(settings) - {"python", "options"})
    if unknown:
        problems.append(f"[runtime.python]: unknown keys {', '.join(unknown)}; allowed keys are python and options")
    if problems:
        raise ConfigError(problems)
    return python, list(options)


class PythonRuntime(Runtime):
    """The runtime for functions written in Python 3.11 or later."""

    name = "python"

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        self.python, self.options = read_settings(settings)
        self.worker_paths: dict[str, Path] = {}

    def executable(self) -> str:
        """Resolve the configured interpreter to an absolute path, or raise ``RuntimeUnavailable`` when it is not found."""
        found = shutil.which(self.python)
        if found is None:
            raise RuntimeUnavailable(
                f"Python interpreter {self.python!r} not found. Set [runtime.python] python to a Python "
                f"{MIN_VERSION[0]}.{MIN_VERSION[1]} or later interpreter that has fastavro installed",
                runtime=self.name,
            )
        return os.path.abspath(found)

    def check(self) -> None:
        """Run the interpreter once to check its version and that it can import fastavro."""
        executable = self.executable()
        as_user: dict[str, Any] = {}
        if os.geteuid() == 0:
            as_user = {"user": UNPRIVILEGED_ID, "group": UNPRIVILEGED_ID, "extra_groups": []}
        environment = {name: os.environ[name] for name in ("PATH", "LANG", "LC_ALL", "TZ") if name in os.environ}
        try:
            probe = subprocess.run(
                [executable, *self.options, "-c", PROBE], capture_output=True, text=True, timeout=CHECK_TIMEOUT,
                cwd="/", env=environment, check=False, **as_user,
            )
        except PermissionError as error:
            raise RuntimeUnavailable(self._unreadable(executable, str(error)), runtime=self.name) from error
        except subprocess.TimeoutExpired as error:
            raise RuntimeUnavailable(f"the version check of {executable} timed out after {CHECK_TIMEOUT:.0f} s",
                                     runtime=self.name) from error
        except OSError as error:
            raise RuntimeUnavailable(f"cannot run Python interpreter {executable}: {error}", runtime=self.name) from error

        if probe.returncode != 0:
            output = probe.stderr.strip().splitlines()[-3:]
            detail = " / ".join(output) or f"exit code {probe.returncode}"
            if as_user:
                raise RuntimeUnavailable(self._unreadable(executable, detail), runtime=self.name)
            raise RuntimeUnavailable(f"Python interpreter {executable} failed its version check: {detail}", runtime=self.name)

        report = json.loads(probe.stdout)
        version = tuple(report["version"])
        if version < MIN_VERSION:
            raise RuntimeUnavailable(
                f"Python {'.'.join(map(str, version))} at {executable} is too old: the python runtime needs "
                f"{MIN_VERSION[0]}.{MIN_VERSION[1]} or later; set [runtime.python] python to a newer interpreter",
                runtime=self.name,
            )
        if report["fastavro"] is None:
            raise RuntimeUnavailable(
                f"{executable} cannot import fastavro ({report['fastavro_error']}). Install it with "
                f"'{executable} -m pip install fastavro', readable by every user when Boothby runs as root",
                runtime=self.name,
            )
        log.debug("python runtime: %s, Python %s, fastavro %s", executable, ".".join(map(str, version)), report["fastavro"])

    def _unreadable(self, executable: str, detail: str) -> str:
        real = os.path.realpath(executable)
        described = executable if real == executable else f"{executable} (a link to {real})"
        return (
            f"Python interpreter {described} cannot run as an unprivileged user ({detail}). As root, Boothby runs "
            f"each worker under its own user id, so the interpreter, its standard library and fastavro must be "
            f"readable by every user. Set [runtime.python] python to such an interpreter, for example a virtual "
            f"environment outside /root made with '/usr/bin/python3 -m venv' and 'pip install fastavro'"
        )

    def prepare(self, function: FunctionConfig, runtime_dir: Path) -> None:
        """Copy the worker program into ``runtime_dir``, where the function's workers can read it."""
        target = Path(runtime_dir) / "python-worker"
        shutil.copytree(WORKER_DIR, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), dirs_exist_ok=True)
        self.worker_paths[function.name] = target

    def worker_spec(self, function: FunctionConfig, code_dir: Path) -> WorkerSpec:
        """Start ``python [options] WORKER_FOLDER``: the folder's ``__main__.py`` loads the handler and serves."""
        worker = self.worker_paths.get(function.name, WORKER_DIR)
        return WorkerSpec(argv=[self.executable(), *self.options, str(worker)], env={"PYTHONUNBUFFERED": "1"})


@boothby.hookimpl
def boothby_register_runtimes(register: Callable[[str, type[Runtime]], None]) -> None:
    register("python", PythonRuntime)
