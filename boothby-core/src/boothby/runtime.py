"""The runtime plugin contract: how to start a worker process for a function."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping

from .config import FunctionConfig


@dataclass
class WorkerSpec:
    """The command that starts one worker, and the variables the runtime adds to its environment."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


class Runtime:
    """Base class of runtime plugins.

    A runtime describes how the pool starts a worker process. The pool owns everything else:
    the private socket directory, the environment (the ``BOOTHBY_*`` variables below, the
    function's declared ``environment`` and what ``WorkerSpec.env`` adds, nothing else), the
    readiness pipe, deadlines, crashes and replacement.

    A worker must listen on the unix socket ``$BOOTHBY_SOCKET``, serve the Avro RPC protocol
    ``boothby/schemas/worker.avpr`` on it, and write one JSON line to the file descriptor
    ``$BOOTHBY_READY_FD``: ``{"status": "ready"}`` once it can take calls, or
    ``{"status": "failed", "error": "..."}`` if the function could not be loaded.
    """

    name: ClassVar[str] = ""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = settings

    def check(self) -> None:
        """Raise ``RuntimeUnavailable`` with the fix when this machine cannot run the runtime's workers."""

    def prepare(self, function: FunctionConfig, runtime_dir: Path) -> None:
        """Copy into ``runtime_dir`` the files the function's workers must read, such as a bootstrap script.

        Called once per function before its first worker starts. Afterwards the pool makes the
        folder readable by the function's workers and by nobody else; files outside it, and outside
        the code folder, may be unreadable to workers that run under their own ids.
        """

    def worker_spec(self, function: FunctionConfig, code_dir: Path) -> WorkerSpec:
        """Return the command and the runtime's own environment for one worker of ``function``."""
        raise NotImplementedError
