"""The node runtime refuses to start without a suitable Node.js, naming the version it needs."""

from __future__ import annotations

import subprocess
import sys

from .helpers import write_config


def run_up(config):
    return subprocess.run([sys.executable, "-m", "boothby", "-c", str(config), "up"],
                          capture_output=True, text=True, timeout=60)


def test_missing_node_named(tmp_path):
    config = write_config(tmp_path, {"echo": {"source": "echo"}},
                          sections={"runtime.node": {"node": str(tmp_path / "no-such-node")}})
    completed = run_up(config)
    assert completed.returncode == 2
    assert "needs Node.js 20 or later" in completed.stderr
    assert "no-such-node" in completed.stderr


def test_old_node_rejected_with_version(tmp_path):
    fake = tmp_path / "node"
    fake.write_text("#!/bin/sh\necho v18.19.0\n")
    fake.chmod(0o755)
    config = write_config(tmp_path, {"echo": {"source": "echo"}}, sections={"runtime.node": {"node": str(fake)}})
    completed = run_up(config)
    assert completed.returncode == 2
    assert "needs Node.js 20 or later" in completed.stderr
    assert "v18.19.0" in completed.stderr
