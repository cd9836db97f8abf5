"""The example Python runtime against the runtime conformance suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from boothby.testing import RuntimeConformance, scenarios_in

from ..test_python_runtime import python_runtime, worker_python  # noqa: F401  (fixtures)


class TestPythonRuntime(RuntimeConformance):
    runtime_name = "python"
    scenarios = scenarios_in(Path(__file__).parent / "functions" / "python", handler="app.handler")

    @pytest.fixture
    def runtime_settings(self, worker_python):  # noqa: F811
        return {"python": worker_python}
