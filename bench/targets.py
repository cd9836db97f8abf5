"""Boothby's performance targets and how far a run's medians are from each."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

from .stats import median

LATENCY_SCENARIO = "trivial-c1"
THROUGHPUT_SCENARIO = "trivial-c32"
LATENCY_P50_MS = {"embedded": 0.35, "redis": 0.6, "rabbitmq": 1.0, "kafka": 3.0}
THROUGHPUT_RPS = {"embedded": 8000, "redis": 4000, "rabbitmq": 2500, "kafka": 2000}
P99_OVER_P50 = 3.0
REDIS_OVER_CELERY_RPS = 8.0
REDIS_OVER_CELERY_P50 = 1 / 3
IDLE_NODE_WORKER_MIB = 50.0
STARTUP_SECONDS = 1.5
MIB = 1024 * 1024


@dataclass
class Target:
    """One target: the measured value, the limit, and by how much the value misses it."""

    name: str
    unit: str
    comparison: str  # "<=" or ">="
    limit: float
    measured: float | None
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.measured is None:
            return None
        return self.measured <= self.limit if self.comparison == "<=" else self.measured >= self.limit

    @property
    def miss(self) -> float | None:
        """How far the value is on the wrong side of the limit, in ``unit``; 0 when met."""
        if self.measured is None:
            return None
        gap = self.measured - self.limit if self.comparison == "<=" else self.limit - self.measured
        return max(gap, 0.0)

    @property
    def miss_percent(self) -> float | None:
        if self.miss is None or not self.limit:
            return None
        return 100 * self.miss / self.limit

    def as_dict(self) -> dict:
        return {**asdict(self), "met": self.met, "miss": self.miss, "miss_percent": self.miss_percent}


def evaluate(summary: dict, memory: dict, startup: dict, contenders: dict) -> list[dict]:
    """Return every target as a dict, with ``measured`` None (and a note) where nothing was measured."""
    targets: list[Target] = []
    latency = summary.get(LATENCY_SCENARIO, {})
    throughput = summary.get(THROUGHPUT_SCENARIO, {})

    def absent(name: str) -> str:
        info = contenders.get(name, {})
        return f"not measured: {info.get('reason') or info.get('status', 'not selected')}"

    for transport, limit in LATENCY_P50_MS.items():
        row = latency.get(transport)
        p50 = row["latency_ms"]["p50"] if row else None
        targets.append(Target(f"{transport}: p50 latency, 1 connection, trivial function", "ms", "<=", limit, p50,
                              "" if row else absent(transport)))
    for transport in LATENCY_P50_MS:
        row = latency.get(transport)
        ratio = None
        if row and row["latency_ms"]["p50"]:
            ratio = row["latency_ms"]["p99"] / row["latency_ms"]["p50"]
        targets.append(Target(f"{transport}: p99 / p50, 1 connection, trivial function", "×", "<=", P99_OVER_P50,
                              ratio, "" if row else absent(transport)))
    for transport, limit in THROUGHPUT_RPS.items():
        row = throughput.get(transport)
        targets.append(Target(f"{transport}: throughput, 32 connections, trivial function", "req/s", ">=", limit,
                              row["rps"] if row else None, "" if row else absent(transport)))
    for transport in THROUGHPUT_RPS:
        row = throughput.get(transport)
        errors = row["errors"]["total"] if row else None
        targets.append(Target(f"{transport}: errors, 32 connections, all rounds", "errors", "<=", 0,
                              errors, "" if row else absent(transport)))

    targets.append(_celery_target("Redis throughput / Celery throughput, 32 connections", ">=", REDIS_OVER_CELERY_RPS,
                                  throughput, lambda row: row["rps"], absent))
    targets.append(_celery_target("Redis p50 / Celery p50, 1 connection", "<=", REDIS_OVER_CELERY_P50,
                                  latency, lambda row: row["latency_ms"]["p50"], absent))

    node_rss = idle_node_worker_rss(memory.get("embedded", {}))
    targets.append(Target("idle Node worker RSS (embedded, trivial function)", "MiB", "<=", IDLE_NODE_WORKER_MIB,
                          node_rss / MIB if node_rss is not None else None,
                          "the larger of the medians before and after the load rounds" if node_rss is not None
                          else absent("embedded")))
    targets.append(Target("`boothby up` to first answered request, 4 workers (median)", "s", "<=", STARTUP_SECONDS,
                          startup.get("median_seconds"),
                          "" if startup.get("median_seconds") is not None else "not measured"))
    return [target.as_dict() for target in targets]


def _celery_target(name: str, comparison: str, limit: float, rows: dict, value_of: Callable[[dict], float | None],
                   absent: Callable[[str], str]) -> Target:
    """Compare Boothby on Redis with Celery in one scenario, as the ratio Redis / Celery."""
    for contender in ("redis", "celery"):
        if contender not in rows:
            return Target(name, "×", comparison, limit, None, absent(contender))
    redis_value = value_of(rows["redis"])
    celery_value = value_of(rows["celery"])
    if redis_value is None or not celery_value:
        return Target(name, "×", comparison, limit, None, "no valid measurement of Redis or Celery")
    return Target(name, "×", comparison, limit, redis_value / celery_value)


def idle_node_worker_rss(memory: dict) -> float | None:
    """Return the larger of the median idle RSS of the trivial function's node workers before and after load."""
    medians = []
    for moment in ("before_load", "after_load"):
        rows = [row["rss_bytes"] for row in memory.get(moment, [])
                if row["role"] == "node worker" and row.get("function") == "trivial"]
        if rows:
            medians.append(median(rows))
    return max(medians) if medians else None
