"""Reduce the measurements of all rounds to one median row per scenario and contender."""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Iterable

LIMIT = "bare-node"
PERCENTILES = ("p50", "p90", "p99", "p99.9")


def median(values: Iterable[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def summarize(measurements: list[dict]) -> dict[str, dict[str, dict]]:
    """Return ``{scenario: {contender: row}}`` with medians over rounds and ratios to the limit.

    Request and error counts are sums over rounds. Measurements during which the contender's
    broker restarted are left out and counted in ``left_out_broker_restarted``. ``ratio_rps`` is the contender's median
    requests per second divided by the bare-Node median of the same scenario; ``ratio_p50`` is
    the same for the median latency.
    """
    grouped: dict[tuple[str, str], list[dict]] = defaultdict(list)
    left_out: dict[tuple[str, str], int] = defaultdict(int)
    for measurement in measurements:
        key = (measurement["scenario"], measurement["contender"])
        if measurement.get("broker_restarted"):
            left_out[key] += 1
        else:
            grouped[key].append(measurement)

    summary: dict[str, dict[str, dict]] = defaultdict(dict)
    for (scenario, contender), rows in grouped.items():
        errors: dict[str, int] = defaultdict(int)
        for row in rows:
            for kind, count in row["errors"].items():
                errors[kind] += count
        roles = sorted({role for row in rows for role in row["cpu_s_per_1000"]})
        summary[scenario][contender] = {
            "rounds": len(rows),
            "left_out_broker_restarted": left_out[(scenario, contender)],
            "connections": rows[0]["connections"],
            "requests": sum(row["requests"] for row in rows),
            "errors": dict(errors),
            "rps": median(row["rps"] for row in rows),
            "latency_ms": {
                percentile: _milliseconds(median(row["latency_us"][percentile] for row in rows))
                for percentile in PERCENTILES
            },
            "cpu_s_per_1000": {role: median(row["cpu_s_per_1000"].get(role) for row in rows) for role in roles},
            "cpu_s_per_1000_total": median(row["cpu_s_per_1000_total"] for row in rows),
            "cpu_s_per_1000_own": median(row["cpu_s_per_1000_own"] for row in rows),
        }

    for rows in summary.values():
        limit = rows.get(LIMIT)
        for row in rows.values():
            row["ratio_rps"] = _ratio(row["rps"], limit["rps"] if limit else None)
            row["ratio_p50"] = _ratio(row["latency_ms"]["p50"], limit["latency_ms"]["p50"] if limit else None)
    return dict(summary)


def cpu_per_thousand(cpu_seconds: dict[str, float], requests: int) -> dict[str, float]:
    if requests <= 0:
        return {role: 0.0 for role in cpu_seconds}
    return {role: seconds * 1000 / requests for role, seconds in cpu_seconds.items()}


def _milliseconds(microseconds: float | None) -> float | None:
    return microseconds / 1000 if microseconds is not None else None


def _ratio(value: float | None, limit: float | None) -> float | None:
    if value is None or not limit:
        return None
    return value / limit
