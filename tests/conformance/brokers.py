"""Shared settings of the broker conformance tests: a run-unique name prefix, a closed port and broker restarts."""

from __future__ import annotations

import socket
import subprocess
import uuid
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts" / "brokers"

RUN_PREFIX = f"conformance-{uuid.uuid4().hex[:8]}"
"""Prefix of every key, queue and topic one test run creates, so that one run does not see another's messages."""


def closed_port() -> int:
    """Return a port on 127.0.0.1 that the system just handed out and that was closed again.

    Nothing listens there unless another process takes the port in the meantime.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def restart(broker: str) -> None:
    """Restart a test broker with its script under scripts/brokers, which returns once the broker responds."""
    subprocess.run([str(SCRIPTS / f"{broker}.sh"), "restart"], check=True, timeout=300)
