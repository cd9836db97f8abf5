"""Copy or extract a function's source into a private directory before its workers start."""

from __future__ import annotations

import logging
import os
import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path

from .errors import ConfigError

logger = logging.getLogger(__name__)


def make_private_dir(prefix: str, parent: Path | None = None) -> Path:
    """Create a new directory readable only by this user (mode 0700)."""
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


def _check_member(root: Path, name: str, source: Path) -> None:
    target = (root / name).resolve()
    if target != root and root not in target.parents:
        raise ConfigError([f"archive {source} contains {name!r}, which points outside the archive; rebuild it without such paths"])


def prepare_code(source: Path, destination: Path) -> Path:
    """Put a copy of ``source`` (a directory, ``.tar.gz``, ``.tgz`` or ``.zip``) in ``destination``/code.

    Archives are checked before extraction: members that would land outside the target
    directory (absolute paths, ``..``, links pointing out) are rejected.
    """
    code_dir = destination / "code"
    if source.is_dir():
        shutil.copytree(source, code_dir, symlinks=True)
    elif source.name.endswith((".tar.gz", ".tgz")):
        code_dir.mkdir()
        with tarfile.open(source, "r:gz") as archive:
            root = code_dir.resolve()
            for member in archive.getmembers():
                _check_member(root, member.name, source)
                if member.issym() or member.islnk():
                    _check_member(root, os.path.join(os.path.dirname(member.name), member.linkname), source)
            archive.extractall(code_dir, filter="data")
    elif source.name.endswith(".zip"):
        code_dir.mkdir()
        with zipfile.ZipFile(source) as archive:
            root = code_dir.resolve()
            for name in archive.namelist():
                _check_member(root, name, source)
            archive.extractall(code_dir)
    else:
        raise ConfigError([f"source {source} is not a directory, a .tar.gz, a .tgz or a .zip"])
    logger.debug("prepared code of %s in %s", source, code_dir)
    return code_dir
