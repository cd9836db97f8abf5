"""Run workers under their own unprivileged ids, with private directories and resource limits."""

from __future__ import annotations

import logging
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

logger = logging.getLogger(__name__)

_IDS_PER_FUNCTION = 1000


@dataclass(frozen=True)
class WorkerIdentity:
    """The uid and gid one worker process runs as; None means "the deflector's own"."""

    uid: int | None
    gid: int | None


class Isolation:
    """Decides the ids each worker runs as, prepares directories for them and sets their limits.

    When the deflector runs as root, every worker gets a uid of its own and every function a gid
    of its own, both numeric and taken from ``base`` upwards (no /etc/passwd entries are
    needed). A separate uid per worker stops one worker from signalling another or connecting
    to its socket. The per-function gid lets a function's workers read its code and nothing else. Without root the ids cannot change: workers run as the deflector's user, and
    only the limits and the runtime's own sandbox apply.
    """

    def __init__(self, base: int = 100000, max_open_files: int = 1024, max_processes: int = 64,
                 enabled: bool | None = None) -> None:
        self.base = base
        self.max_open_files = max_open_files
        self.max_processes = max_processes
        self.enabled = os.geteuid() == 0 if enabled is None else enabled
        self.prlimit = shutil.which("prlimit")
        self.setpriv = shutil.which("setpriv")
        if self.enabled and (self.prlimit is None or self.setpriv is None):
            raise ConfigError(["the prlimit and setpriv commands (util-linux) are needed to isolate workers; install util-linux"])

    def warn_if_disabled(self) -> None:
        if not self.enabled:
            logger.warning(
                "the deflector is not running as root (uid %d), so it cannot switch workers to their own "
                "unprivileged ids: workers run as this user, with resource limits and the runtime's sandbox only",
                os.geteuid(),
            )

    def function_gid(self, function_index: int) -> int | None:
        if not self.enabled:
            return None
        return self.base + function_index * _IDS_PER_FUNCTION

    def worker_identity(self, function_index: int, slot: int) -> WorkerIdentity:
        """Return the ids of worker ``slot`` (0-based, below 999) of the function at ``function_index``."""
        if not self.enabled:
            return WorkerIdentity(None, None)
        return WorkerIdentity(self.base + function_index * _IDS_PER_FUNCTION + slot + 1, self.function_gid(function_index))

    def share_with_function(self, path: Path, gid: int | None) -> None:
        """Make ``path`` (a folder tree) readable by the function's group and by nobody else."""
        if gid is None:
            return
        for folder, folders, files in os.walk(path):
            os.chown(folder, 0, gid)
            os.chmod(folder, 0o750)
            for name in files:
                file = os.path.join(folder, name)
                if os.path.islink(file):
                    os.lchown(file, 0, gid)
                    continue
                os.chown(file, 0, gid)
                executable = os.stat(file).st_mode & stat.S_IXUSR
                os.chmod(file, 0o750 if executable else 0o640)

    def give_to_worker(self, path: Path, identity: WorkerIdentity) -> None:
        """Hand a private folder to the worker: owned by its uid, mode 0700."""
        if identity.uid is None:
            return
        os.chown(path, identity.uid, identity.gid if identity.gid is not None else -1)
        os.chmod(path, 0o700)

    def check_reachable(self, path: Path) -> None:
        """Raise ``ConfigError`` when a folder above ``path`` blocks other users from reaching it."""
        if not self.enabled:
            return
        for parent in [path, *path.parents]:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                raise ConfigError([
                    f"workers cannot reach {path}: {parent} has mode {stat.S_IMODE(mode):o}, which lets no other user "
                    "through; set [deflector] work_dir to a folder under one that others can traverse, such as /tmp"
                ])

    def command_prefix(self, identity: WorkerIdentity) -> list[str]:
        """Return the commands that set the worker's limits and ids, then exec the runtime.

        ``prlimit`` sets the limits; ``setpriv`` switches to the worker's uid and gid, drops
        supplementary groups and sets no_new_privs, so set-uid programs cannot raise privileges.
        """
        if self.prlimit is None:
            return []
        command = [self.prlimit, f"--nofile={self.max_open_files}", "--core=0"]
        if identity.uid is not None:
            # RLIMIT_NPROC counts every process and thread of the uid: only safe with a uid per worker.
            command += [f"--nproc={self.max_processes}", "--", str(self.setpriv),
                        f"--reuid={identity.uid}", f"--regid={identity.gid}", "--clear-groups", "--no-new-privs"]
        return [*command, "--"]
