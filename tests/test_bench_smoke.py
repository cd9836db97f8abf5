"""Smoke test of the benchmark harness: a --quick run of Boothby (embedded) and the bare-Node limit.

It checks that bench/run.py starts both contenders, measures every scenario without a single
failed request, and writes its JSON and page to the --output-dir folder only. Speed is not
checked, because CI machines differ too much for a threshold to mean anything.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .helpers import ROOT

QUICK_SCENARIOS = {"trivial-c1", "trivial-c32", "echo-c32"}
CONTENDERS = ("embedded", "bare-node")


def _read_if_exists(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None


def test_bench_quick_run(tmp_path: Path) -> None:
    committed_page = ROOT / "docs" / "benchmarks.md"
    committed_latest = ROOT / "bench" / "results" / "latest.json"
    page_before = _read_if_exists(committed_page)
    latest_before = _read_if_exists(committed_latest)

    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--only", ",".join(CONTENDERS),
         "--output-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=240, cwd=ROOT,
    )
    output = f"stdout:\n{completed.stdout[-4000:]}\nstderr:\n{completed.stderr[-4000:]}"
    assert completed.returncode == 0, output

    results = json.loads((tmp_path / "latest.json").read_text())
    stamped = [path for path in tmp_path.glob("*.json") if path.name != "latest.json"]
    assert len(stamped) == 1, output
    for name in CONTENDERS:
        assert results["contenders"][name]["status"] == "measured", results["contenders"][name]

    measured = {(row["scenario"], row["contender"]) for row in results["measurements"]}
    assert measured == {(scenario, name) for scenario in QUICK_SCENARIOS for name in CONTENDERS}
    for row in results["measurements"]:
        assert row["requests"] > 0, row
        assert row["errors"]["total"] == 0, row
        assert row["latency_us"]["p50"] > 0, row
    boothby_roles = set(results["summary"]["trivial-c32"]["embedded"]["cpu_s_per_1000"])
    assert {"grappler worker", "deflector", "node worker"} <= boothby_roles
    assert len(results["startup"]["samples_seconds"]) == 1, results["startup"]

    page = (tmp_path / "benchmarks.md").read_text()
    assert "## Targets" in page
    assert "## Optimisations" in page
    assert _read_if_exists(committed_page) == page_before
    assert _read_if_exists(committed_latest) == latest_before


def test_bench_render_keeps_optimisations(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    try:
        from bench.render import render_page
    finally:
        sys.path.remove(str(ROOT))
    results = _minimal_results()
    existing = "# Benchmarks\n\nold text\n\n## Optimisations\n\nBatched the replies: 2x.\n"

    page = render_page(results, existing, "results.json")

    assert page.endswith("## Optimisations\n\nBatched the replies: 2x.\n")
    assert "old text" not in page


def _minimal_results() -> dict:
    """Results of a run in which nothing could be measured: every section must still render."""
    return {
        "started_at": "2026-01-01T00:00:00+00:00", "elapsed_seconds": 1.0, "command": "bench/run.py",
        "make_target": None,
        "options": {"contenders": ["embedded"], "scenarios": ["trivial-c1"], "rounds": 1, "duration_seconds": 1,
                    "wrk_threads": 1, "function_workers": 4, "grappler_workers": 1, "echo_body_bytes": 65536},
        "machine": {"cpu_model": "test", "logical_cpus": 2, "usable_cpus": 2, "memory_bytes": 1 << 30,
                    "kernel": "6", "os": "test", "architecture": "x86_64"},
        "load_average": {"start": [0.0, 0.0, 0.0], "end": [0.0, 0.0, 0.0]},
        "versions": {},
        "contenders": {"embedded": {"label": "Boothby (embedded)", "kind": "boothby", "status": "skipped",
                                    "reason": "the embedded transport plugin is not installed", "rounds_measured": 0,
                                    "settings": {}, "version": None}},
        "summary": {}, "memory": {}, "measurements": [],
        "startup": {"workers": 4, "samples_seconds": [], "median_seconds": None, "failures": []},
        "targets": [],
    }
