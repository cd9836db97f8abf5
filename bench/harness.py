"""Run the benchmark: start the contenders, measure them in interleaved rounds, collect the results."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from .contenders import BoothbyContender, Contender, RunContext, Unavailable, create_contender
from .errors import BenchError
from .processes import CLOCK_TICKS, all_processes
from .startup import measure_startup
from .stats import cpu_per_thousand, median
from .wrk import Load, run_wrk

logger = logging.getLogger("bench.harness")

BODY_BYTES = 64 * 1024
RECOVERY_TIMEOUT = 60.0
"""Seconds a contender may take to respond correctly again after its broker restarted."""
RESTART_GRACE = 15.0
"""Seconds to watch a broker after a measurement with errors: a stopping broker keeps its pid until it exits."""
MAX_RESTARTS = 2
"""How often a failed contender is started again, at the beginning of a later round."""


@dataclass(frozen=True)
class Scenario:
    """One load shape: which function, how many connections."""

    function: str  # "trivial" (GET) or "echo" (POST of the 64 KiB body)
    connections: int

    @property
    def name(self) -> str:
        return f"{self.function}-c{self.connections}"


@dataclass(frozen=True)
class Plan:
    """The contenders, scenarios, rounds and durations of one run."""

    contenders: tuple[str, ...]
    scenarios: tuple[Scenario, ...]
    rounds: int
    duration: int
    wrk_threads: int
    startup_samples: int
    warm_up: bool = True
    """Load each route for 1 s after start-up; --quick leaves it out, so idle memory is read sooner."""
    idle_settle: float = 1.0
    """Seconds to wait before reading idle memory, so that garbage collection after the last request has run."""


def write_body(path: Path) -> Path:
    """Write the 64 KiB echo body: printable ASCII lines, so every contender passes it on as text."""
    line = b"".join(bytes([32 + (index % 95)]) for index in range(63)) + b"\n"
    path.write_bytes((line * (BODY_BYTES // len(line) + 1))[:BODY_BYTES])
    return path


class Harness:
    """Owns the contenders of one run; everything it starts is in ``context.services``."""

    def __init__(self, plan: Plan, context: RunContext, wrk: str) -> None:
        self.plan = plan
        self.context = context
        self.wrk = wrk
        self.contenders: list[Contender] = [create_contender(name, context) for name in plan.contenders]
        self.measurements: list[dict] = []
        self.memory: dict[str, dict[str, list[dict]]] = {}
        self.startup_samples: list[dict] = []
        self.broker_identities: dict[str, tuple[int, int] | None] = {}
        self.skipped_measurements: list[dict] = []

    def run(self) -> None:
        for contender in self.contenders:
            self.bring_up(contender)
        for round_index in range(self.plan.rounds):
            self.retry_skipped()
            self.restart_failed()
            running = [contender for contender in self.contenders if contender.status == "running"]
            print(f"round {round_index + 1}/{self.plan.rounds}: {', '.join(c.name for c in running) or 'no contender running'}",
                  flush=True)
            if round_index < self.plan.startup_samples and "embedded" in self.plan.contenders:
                self.sample_startup(round_index)
            for scenario in self.plan.scenarios:
                # Rotate the order every round, so that no contender always runs right after another.
                shift = round_index % len(running) if running else 0
                for contender in running[shift:] + running[:shift]:
                    if contender.status == "running":
                        self.measure(contender, scenario, round_index)
            for contender in running:
                if contender.status == "running":
                    contender.rounds_measured += 1
        time.sleep(self.plan.idle_settle)
        for contender in self.contenders:
            if contender.status == "running":
                self.memory.setdefault(contender.name, {})["after_load"] = contender.memory()

    def bring_up(self, contender: Contender) -> None:
        """Start one contender, check its responses, warm it up and read its idle memory."""
        try:
            contender.check_available()
        except Unavailable as error:
            contender.status, contender.reason = "skipped", str(error)
            print(f"skipping {contender.name}: {error}", flush=True)
            return
        print(f"starting {contender.label}", flush=True)
        started = time.monotonic()
        try:
            contender.start()
            contender.wait_until_ready()
            if self.plan.warm_up:
                for function in ("trivial", "echo"):
                    run_wrk(self.wrk, self.load(contender, Scenario(function, 32), 1))
        except BenchError as error:
            self.fail(contender, str(error))
            return
        contender.status = "running"
        contender.reason = None
        self.broker_identities[contender.name] = contender.broker_identity()
        time.sleep(self.plan.idle_settle)
        self.memory.setdefault(contender.name, {}).setdefault("before_load", contender.memory())
        print(f"{contender.label} is ready ({time.monotonic() - started:.1f}s)", flush=True)

    def retry_skipped(self) -> None:
        """Start Boothby contenders that were skipped because their plugin or broker was missing, if it has appeared."""
        for contender in self.contenders:
            if contender.status == "skipped" and isinstance(contender, BoothbyContender):
                try:
                    contender.check_available()
                except Unavailable:
                    continue
                print(f"{contender.name} is available now; starting it for the remaining rounds", flush=True)
                self.bring_up(contender)

    def restart_failed(self) -> None:
        """Start contenders that failed in an earlier round again, up to MAX_RESTARTS times each.

        Other work on the machine may restart a shared broker, and a contender whose process
        exits when its broker goes away should still be measured in the later rounds.
        """
        for contender in self.contenders:
            if contender.status == "failed" and len(contender.failures) <= MAX_RESTARTS:
                print(f"starting {contender.name} again after failure {len(contender.failures)} "
                      f"(at most {MAX_RESTARTS} restarts)", flush=True)
                self.bring_up(contender)

    def fail(self, contender: Contender, reason: str) -> None:
        contender.status, contender.reason = "failed", reason
        contender.failures.append(reason)
        print(f"{contender.label} failed: {reason}", flush=True)
        contender.stop()

    def recover_from_broker_restart(self, contender: Contender, scenario: Scenario, round_index: int) -> bool:
        """Wait until a contender whose broker restarted responds correctly again; False skips this measurement."""
        print(f"  {contender.name}: the {contender.broker} broker restarted since the last measurement; "
              "waiting for correct responses", flush=True)
        try:
            contender.wait_until_ready(RECOVERY_TIMEOUT)
        except BenchError as error:
            if contender.dead_service() is not None:
                self.fail(contender, str(error))
                return False
            self.skipped_measurements.append({"round": round_index + 1, "scenario": scenario.name,
                                              "contender": contender.name, "reason": str(error).splitlines()[0]})
            print(f"  {contender.name}: skipping {scenario.name} in this round: {str(error).splitlines()[0]}", flush=True)
            return False
        self.broker_identities[contender.name] = contender.broker_identity()
        return True

    def load(self, contender: Contender, scenario: Scenario, duration: int) -> Load:
        return Load(
            url=contender.url(scenario.function),
            connections=scenario.connections,
            duration=duration,
            threads=self.plan.wrk_threads,
            body_file=self.context.body_file if scenario.function == "echo" else None,
            content_type="text/plain",
        )

    def cpu_ticks(self, contender: Contender) -> dict[tuple[int, int], tuple[str, int]]:
        """Return ``{(pid, start time): (role, CPU ticks)}`` for the contender's processes."""
        snapshot = all_processes()
        return {(info.pid, info.start_ticks): (role, info.cpu_ticks) for role, info in contender.processes(snapshot)}

    def measure(self, contender: Contender, scenario: Scenario, round_index: int) -> None:
        broker_before = contender.broker_identity()
        if contender.broker and broker_before != self.broker_identities.get(contender.name):
            if not self.recover_from_broker_restart(contender, scenario, round_index):
                return
            broker_before = contender.broker_identity()
        before = self.cpu_ticks(contender)
        try:
            result = run_wrk(self.wrk, self.load(contender, scenario, self.plan.duration))
        except BenchError as error:
            self.fail(contender, str(error))
            return
        after = self.cpu_ticks(contender)
        broker_after = contender.broker_identity()
        restarted = contender.broker is not None and broker_after != broker_before
        if contender.broker is not None and not restarted and result["errors"]["total"] > 0:
            restarted = self.broker_restarts_soon(contender, broker_before)
        self.broker_identities[contender.name] = broker_after

        cpu_seconds: dict[str, float] = {}
        for key, (role, ticks) in after.items():
            # A process that started during the run counts from zero; one that exited is lost.
            _, ticks_before = before.get(key, (role, 0))
            cpu_seconds[role] = cpu_seconds.get(role, 0.0) + (ticks - ticks_before) / CLOCK_TICKS
        per_thousand = cpu_per_thousand(cpu_seconds, result["requests"])
        own = {role: value for role, value in per_thousand.items() if not role.endswith(" broker")}
        measurement = {
            "round": round_index + 1,
            "scenario": scenario.name,
            "function": scenario.function,
            "contender": contender.name,
            "connections": scenario.connections,
            "duration_s": result["duration_us"] / 1e6,
            "requests": result["requests"],
            "rps": result["rps"],
            "bytes": result["bytes"],
            "errors": result["errors"],
            "latency_us": result["latency_us"],
            "cpu_s": cpu_seconds,
            "cpu_s_per_1000": per_thousand,
            "cpu_s_per_1000_total": sum(per_thousand.values()),
            "cpu_s_per_1000_own": sum(own.values()),
            # A measurement during which the broker restarted shows the restart, not the steady state,
            # so the summary leaves it out and the page counts it.
            "broker_restarted": restarted,
        }
        self.measurements.append(measurement)
        latency = result["latency_us"]
        note = "  (broker restarted: left out of the medians)" if measurement["broker_restarted"] else ""
        print(f"  {scenario.name:<13} {contender.name:<12} {result['rps']:>9,.0f} req/s  p50 {latency['p50'] / 1000:7.2f} ms"
              f"  p99 {latency['p99'] / 1000:7.2f} ms  errors {result['errors']['total']}{note}", flush=True)

        dead = contender.dead_service()
        if dead is not None:
            self.fail(contender, f"{dead.name} (pid {dead.pid}) exited with code {dead.popen.returncode} during "
                                 f"{scenario.name}:\n{dead.log_tail()}")

    def broker_restarts_soon(self, contender: Contender, identity: tuple[int, int] | None) -> bool:
        """Tell whether the broker restarts within RESTART_GRACE seconds, polling its pid every 0.2 s.

        Called after a measurement with errors: a broker that was stopping during it still had its
        old pid at the end, and the errors belong to the restart rather than to the contender.
        """
        deadline = time.monotonic() + RESTART_GRACE
        while time.monotonic() < deadline:
            if contender.broker_identity() != identity:
                return True
            time.sleep(0.2)
        return False

    def sample_startup(self, round_index: int) -> None:
        sample = measure_startup(self.context, round_index + 1)
        self.startup_samples.append(sample)
        if sample["seconds"] is None:
            print(f"  boothby up start-up failed: {sample['error']}", flush=True)
        else:
            print(f"  boothby up to first response: {sample['seconds']:.3f} s", flush=True)

    def startup_summary(self) -> dict:
        seconds = [sample["seconds"] for sample in self.startup_samples if sample["seconds"] is not None]
        return {
            "workers": 4,
            "samples_seconds": seconds,
            "median_seconds": median(seconds),
            "failures": [sample["error"] for sample in self.startup_samples if sample["seconds"] is None],
        }

    def contender_records(self) -> dict[str, dict]:
        return {
            contender.name: {
                "label": contender.label,
                "kind": contender.kind,
                "status": "measured" if contender.status == "running" else contender.status,
                "reason": contender.reason,
                "rounds_measured": contender.rounds_measured,
                "settings": contender.settings,
                "version": getattr(contender, "version", None),
                "failures": [" ".join(failure.split())[:1000] for failure in contender.failures],
            }
            for contender in self.contenders
        }
