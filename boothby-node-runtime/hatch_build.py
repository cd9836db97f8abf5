"""Build hook: install the worker's JavaScript dependencies and ship them inside the wheel."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class NodeDependenciesHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        js_dir = Path(self.root) / "src" / "boothby_node" / "js"
        if not (js_dir / "node_modules" / "avsc").is_dir():
            npm = shutil.which("npm")
            if npm is None:
                raise RuntimeError("npm is needed to build boothby-node-runtime: install Node.js 20 or later with npm")
            subprocess.run([npm, "ci", "--omit=dev", "--no-audit", "--no-fund"], cwd=js_dir, check=True)
        build_data["artifacts"].append("src/boothby_node/js/node_modules/")
