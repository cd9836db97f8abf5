"""The node runtime against the runtime conformance suite."""

from __future__ import annotations

from pathlib import Path

from boothby.testing import RuntimeConformance, scenarios_in


class TestNodeRuntime(RuntimeConformance):
    runtime_name = "node"
    scenarios = scenarios_in(Path(__file__).parent / "functions" / "node")
