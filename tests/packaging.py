"""Build wheels of the workspace's distributions and install them into a clean virtualenv."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

from .helpers import ROOT


def build_wheels(distributions: list[str], out_dir: Path) -> list[Path]:
    """Build one wheel per distribution folder (for example ``boothby-core``) into ``out_dir``."""
    wheels = []
    for distribution in distributions:
        subprocess.run(
            [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out_dir), str(ROOT / distribution)],
            check=True, capture_output=True, text=True,
        )
        prefix = Path(distribution).name.replace("-", "_") + "-"
        found = [path for path in out_dir.glob("*.whl") if path.name.startswith(prefix)]
        assert found, f"no wheel built for {distribution} in {out_dir}"
        wheels.append(found[0])
    return wheels


def clean_venv(directory: Path, wheels: list[Path]) -> Path:
    """Create a virtualenv with nothing but ``wheels`` and their dependencies; return its bin folder."""
    venv.EnvBuilder(with_pip=True, clear=True).create(directory)
    bin_dir = directory / "bin"
    subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *map(str, wheels)],
        check=True, capture_output=True, text=True,
    )
    return bin_dir
