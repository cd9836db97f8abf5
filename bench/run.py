"""Benchmark Boothby against the bare-Node limit, Celery and of-watchdog, side by side on this machine.

Starts every contender on 127.0.0.1, measures them with wrk in interleaved rounds, writes the
results as JSON and renders docs/benchmarks.md from them. `make bench` runs it with the
defaults; `python bench/run.py --help` lists the options.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script (`python bench/run.py`): make the `bench` package importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import machine, render, targets  # noqa: E402
from bench.contenders import ALL_CONTENDERS, RunContext  # noqa: E402
from bench.errors import BenchError  # noqa: E402
from bench.harness import Harness, Plan, Scenario, write_body  # noqa: E402
from bench.processes import ServiceSet  # noqa: E402
from bench.stats import summarize  # noqa: E402
from bench.wrk import ensure_wrk, wrk_version  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS_DIR = REPO / "bench" / "results"
DEFAULT_PAGE = REPO / "docs" / "benchmarks.md"


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Measure Boothby on each transport against the bare-Node limit, Celery and of-watchdog.",
    )
    parser.add_argument("--quick", action="store_true",
                        help="one round of 1 s per measurement, 32 connections only, one start-up sample, "
                             "no warm-up (for CI)")
    parser.add_argument("--only", metavar="NAMES",
                        help=f"comma-separated contenders to run, from: {','.join(ALL_CONTENDERS)} (default: all)")
    parser.add_argument("--duration", type=int, metavar="SECONDS",
                        help="seconds of load per measurement (default 3; 1 with --quick)")
    parser.add_argument("--rounds", type=int, help="rounds; each runs every contender once per scenario (default 5; 1 with --quick)")
    parser.add_argument("--connections", metavar="LIST",
                        help="comma-separated connection counts for the throughput scenarios (default 8,32,128; 32 with --quick)")
    parser.add_argument("--startup-samples", type=int, metavar="N",
                        help="`boothby up` start-up samples, one per round (default: one in every round)")
    parser.add_argument("--workers", type=int, default=4, help="Node workers per Boothby function (default 4)")
    parser.add_argument("--grappler-workers", type=int, default=1,
                        help="grappler (gunicorn) worker processes of each Boothby contender (default 1)")
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--of-watchdog-version", default="latest",
                        help="version of github.com/openfaas/of-watchdog for `go install` (default latest)")
    parser.add_argument("--output-dir", type=Path, metavar="DIR",
                        help="write the JSON and the rendered page to DIR instead of bench/results/ and docs/ "
                             "(--quick without it writes to a new temporary folder)")
    arguments = parser.parse_args(argv)

    arguments.contenders = _parse_contenders(parser, arguments.only)
    arguments.rounds = arguments.rounds or (1 if arguments.quick else 5)
    arguments.duration = arguments.duration or (1 if arguments.quick else 3)
    connections = arguments.connections or ("32" if arguments.quick else "8,32,128")
    try:
        arguments.connection_counts = tuple(int(count) for count in connections.split(","))
    except ValueError:
        parser.error(f"--connections {connections!r} is invalid: expected whole numbers separated by commas, such as 8,32,128")
    for name, value in (("--rounds", arguments.rounds), ("--duration", arguments.duration),
                        ("--workers", arguments.workers), ("--grappler-workers", arguments.grappler_workers),
                        ("--wrk-threads", arguments.wrk_threads), *(("--connections", c) for c in arguments.connection_counts)):
        if value < 1:
            parser.error(f"{name} {value} is invalid: expected 1 or more")
    if arguments.startup_samples is None:
        arguments.startup_samples = arguments.rounds
    return arguments


def _parse_contenders(parser: argparse.ArgumentParser, only: str | None) -> tuple[str, ...]:
    if not only:
        return ALL_CONTENDERS
    names = tuple(name.strip() for name in only.split(",") if name.strip())
    unknown = [name for name in names if name not in ALL_CONTENDERS]
    if unknown or not names:
        parser.error(f"--only {only!r} is invalid: unknown contender {', '.join(unknown) or '(none given)'}; "
                     f"expected names from {','.join(ALL_CONTENDERS)}")
    return names


def build_plan(arguments: argparse.Namespace) -> Plan:
    """List the scenarios: latency at one connection, then throughput at each count, for both functions.

    The echo function gets one throughput scenario, at 32 connections (or the first count given
    when 32 is not among them). --quick keeps trivial at 1 and 32 connections and echo at 32.
    """
    counts = arguments.connection_counts
    echo_count = 32 if 32 in counts else counts[0]
    scenarios = [Scenario("trivial", 1)] + [Scenario("trivial", count) for count in counts if count != 1]
    if not arguments.quick:
        scenarios.append(Scenario("echo", 1))
    scenarios.append(Scenario("echo", echo_count))
    return Plan(
        contenders=arguments.contenders,
        scenarios=tuple(scenarios),
        rounds=arguments.rounds,
        duration=arguments.duration,
        wrk_threads=arguments.wrk_threads,
        startup_samples=min(arguments.startup_samples, arguments.rounds),
        warm_up=not arguments.quick,
        idle_settle=0.2 if arguments.quick else 1.0,
    )


def output_locations(arguments: argparse.Namespace) -> tuple[Path, Path | None, bool]:
    """Return (results folder, page path or None, whether to update latest.json).

    Only a full run (all contenders, not --quick) into the default folder updates latest.json and
    docs/benchmarks.md. Other runs keep the committed results and print where theirs went.
    """
    if arguments.output_dir is not None:
        return arguments.output_dir, arguments.output_dir / "benchmarks.md", True
    if arguments.quick:
        directory = Path(tempfile.mkdtemp(prefix="boothby-benchmark-quick-"))
        return directory, directory / "benchmarks.md", True
    full = arguments.contenders == ALL_CONTENDERS
    return DEFAULT_RESULTS_DIR, DEFAULT_PAGE if full else None, full


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    plan = build_plan(arguments)
    results_dir, page_path, update_latest = output_locations(arguments)
    # SIGTERM unwinds like Ctrl-C, so the finally block below stops every process by pid.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)

    started_at = datetime.datetime.now(datetime.timezone.utc)
    started = time.monotonic()
    load_at_start = machine.load_average()
    services = ServiceSet()
    work_dir = Path(tempfile.mkdtemp(prefix="boothby-benchmark-"))
    print(f"benchmark: {len(plan.contenders)} contenders, {len(plan.scenarios)} scenarios, {plan.rounds} rounds of "
          f"{plan.duration}s per measurement; logs in {work_dir}", flush=True)
    try:
        wrk = ensure_wrk()
        context = RunContext(
            work_dir=work_dir,
            services=services,
            body_file=write_body(work_dir / "body-64k.txt"),
            function_workers=arguments.workers,
            grappler_workers=arguments.grappler_workers,
            of_watchdog_version=arguments.of_watchdog_version,
        )
        harness = Harness(plan, context, wrk)
        harness.run()
    except BenchError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("benchmark interrupted; stopping every process it started", file=sys.stderr)
        return 130
    finally:
        services.stop_all()

    contenders = harness.contender_records()
    summary = summarize(harness.measurements)
    startup = harness.startup_summary()
    watchdog = contenders.get("of-watchdog", {})
    results = {
        "format": 1,
        "started_at": started_at.isoformat(timespec="seconds"),
        "elapsed_seconds": round(time.monotonic() - started, 1),
        "command": _command_line(),
        "make_target": "bench" if os.environ.get("MAKELEVEL") and page_path == DEFAULT_PAGE else None,
        "options": {
            "quick": arguments.quick,
            "contenders": list(plan.contenders),
            "scenarios": [scenario.name for scenario in plan.scenarios],
            "rounds": plan.rounds,
            "duration_seconds": plan.duration,
            "wrk_threads": plan.wrk_threads,
            "warm_up": plan.warm_up,
            "function_workers": arguments.workers,
            "grappler_workers": arguments.grappler_workers,
            "echo_body_bytes": context.body_file.stat().st_size,
        },
        "machine": machine.describe_machine(),
        "load_average": {"start": load_at_start, "end": machine.load_average()},
        "versions": machine.describe_versions(wrk_version(wrk), watchdog.get("version")),
        "contenders": contenders,
        "summary": summary,
        "memory": harness.memory,
        "startup": startup,
        "measurements": harness.measurements,
        "skipped_measurements": harness.skipped_measurements,
    }
    results["targets"] = targets.evaluate(summary, harness.memory, startup, contenders)
    write_results(results, results_dir, page_path, update_latest, started_at)
    failed = [name for name, record in contenders.items() if record["status"] == "failed"]
    if failed:
        print(f"failed contenders: {', '.join(failed)}; reasons in the results, process logs in {work_dir}",
              file=sys.stderr)
        return 1
    shutil.rmtree(work_dir, ignore_errors=True)
    return 0


def _command_line() -> str:
    parts = [os.path.relpath(sys.executable, REPO) if sys.executable.startswith(str(REPO)) else sys.executable,
             os.path.relpath(sys.argv[0], REPO) if Path(sys.argv[0]).resolve().is_relative_to(REPO) else sys.argv[0],
             *sys.argv[1:]]
    return shlex.join(parts)


def _write_atomically(path: Path, text: str) -> None:
    """Write through a .tmp file and a rename, so that an interrupted run never leaves half a file."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def write_results(results: dict, results_dir: Path, page_path: Path | None, update_latest: bool,
                  started_at: datetime.datetime) -> None:
    results_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=2, sort_keys=False) + "\n"
    stamped = results_dir / f"{started_at.strftime('%Y-%m-%dT%H-%M-%SZ')}.json"
    _write_atomically(stamped, text)
    print(f"results: {stamped}")
    if update_latest:
        _write_atomically(results_dir / "latest.json", text)
        print(f"results: {results_dir / 'latest.json'}")
    if page_path is not None:
        existing = page_path.read_text() if page_path.exists() else ""
        source = stamped.relative_to(REPO) if stamped.is_relative_to(REPO) else stamped
        page_path.write_text(render.render_page(results, existing, str(source)))
        print(f"page: {page_path}")
    else:
        print("a partial run (--only): bench/results/latest.json and docs/benchmarks.md are left unchanged")


if __name__ == "__main__":
    sys.exit(main())
