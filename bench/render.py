"""Render docs/benchmarks.md from a results JSON file written by bench/run.py.

Usage: python -m bench.render [RESULTS_JSON] [--output PAGE]
(defaults: bench/results/latest.json and docs/benchmarks.md). The page's "Optimisations"
section is kept from the existing page, so that text written there survives a new run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OPTIMISATIONS_HEADING = "## Optimisations"
OPTIMISATIONS_PLACEHOLDER = "_To be filled in by the lead engineer: what was optimised, and the numbers before and after._\n"
MIB = 1024 * 1024
ROLE_ORDER = ("boothby up", "grappler master", "grappler worker", "deflector", "deflector child", "node worker",
              "node server", "of-watchdog", "http front", "celery worker", "celery pool process")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _number(value: float | None, decimals: int = 0) -> str:
    return "–" if value is None else f"{value:,.{decimals}f}"


def _ms(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 10:
        return f"{value:.2f}"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:,.0f}"


def _ratio(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.2f}×" if value < 10 else f"{value:.1f}×"


def _cpu(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _table(header: list[str], rows: list[list[str]], align: list[str] | None = None) -> str:
    align = align or ["l"] + ["r"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if side == "r" else "---" for side in align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _contender_order(results: dict) -> list[str]:
    return [name for name in results["options"]["contenders"] if name in results["contenders"]]


def _label(results: dict, name: str) -> str:
    return results["contenders"][name]["label"]


def _scenario_title(scenario: str, body_bytes: int) -> str:
    function, _, connections = scenario.partition("-c")
    count = int(connections)
    if function == "trivial":
        description = "trivial function (GET, short text)"
    else:
        description = f"echo function (POST, {body_bytes // 1024} KiB body)"
    return f"{description}, {_count(count, 'connection')}"


def _targets_section(results: dict) -> str:
    rows = []
    for target in results["targets"]:
        unit = target["unit"]
        if unit == "errors":
            limit_text = "0"
        else:
            limit_text = f"{target['comparison'].replace('<=', '≤').replace('>=', '≥')} {_format_value(target['limit'], unit)}"
        if target["met"] is None:
            met, miss = "not measured", target["note"].removeprefix("not measured: ") or "–"
        elif target["met"]:
            met, miss = "yes", "–"
        else:
            sign = "+" if target["comparison"] == "<=" else "−"
            met = "no"
            miss = f"{sign}{_format_value(target['miss'], unit)}"
            if target["miss_percent"] is not None:
                miss += f" ({target['miss_percent']:.0f} %)"
        rows.append([target["name"], limit_text, _format_value(target["measured"], unit), met, miss])
    met_count = sum(1 for target in results["targets"] if target["met"])
    measured_count = sum(1 for target in results["targets"] if target["met"] is not None)
    return (f"{met_count} of {len(results['targets'])} targets met ({measured_count} measured). "
            "\"Miss\" is how far the median is on the wrong side of the limit.\n\n"
            + _table(["target", "limit", "measured", "met", "miss"], rows, ["l", "r", "r", "l", "r"]))


def _format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "ms":
        return f"{_ms(value)} ms"
    if unit == "req/s":
        return f"{value:,.0f} req/s"
    if unit == "×":
        return f"{value:.2f}×"
    if unit == "errors":
        return f"{value:,.0f}"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    if unit == "s":
        return f"{value:.2f} s"
    return f"{value:g} {unit}"


def _scenario_section(results: dict, scenario: str) -> str:
    rows = []
    summary = results["summary"].get(scenario, {})
    for name in _contender_order(results):
        row = summary.get(name)
        if row is None:
            continue
        latency = row["latency_ms"]
        rows.append([
            _label(results, name),
            str(row["rounds"]),
            _number(row["rps"]),
            _ratio(row["ratio_rps"]),
            _ms(latency["p50"]),
            _ratio(row["ratio_p50"]),
            _ms(latency["p99"]),
            _ms(latency["p99.9"]),
            f"{row['errors']['total']:,} / {row['requests']:,}",
            _cpu(row["cpu_s_per_1000_own"]),
            _cpu(row["cpu_s_per_1000_total"]),
        ])
    if not rows:
        return "No contender was measured in this scenario.\n" + _left_out_note(results, scenario)
    table = _table(["contender", "rounds", "req/s", "× limit", "p50 ms", "p50 × limit", "p99 ms", "p99.9 ms",
                    "errors / requests", "CPU s / 1k req", "with broker"], rows)
    return table + _left_out_note(results, scenario)


def _left_out_note(results: dict, scenario: str) -> str:
    """List the measurements of a scenario that the medians leave out, and why."""
    notes = []
    restarted = [row for row in results["measurements"] if row["scenario"] == scenario and row.get("broker_restarted")]
    for row in restarted:
        notes.append(f"{_label(results, row['contender'])} in round {row['round']}: its broker restarted during the "
                     f"measurement ({row['rps']:,.0f} req/s, {_count(row['errors']['total'], 'error')})")
    for row in results.get("skipped_measurements", []):
        if row["scenario"] == scenario:
            notes.append(f"{_label(results, row['contender'])} in round {row['round']}: not measured, because "
                         f"{row['reason']}")
    if not notes:
        return ""
    return "\nLeft out of the medians: " + "; ".join(notes) + ".\n"


def _cpu_section(results: dict, scenario: str) -> str:
    summary = results["summary"].get(scenario, {})
    rows = []
    for name in _contender_order(results):
        row = summary.get(name)
        if row is None:
            continue
        roles = sorted(row["cpu_s_per_1000"], key=lambda role: (ROLE_ORDER.index(role) if role in ROLE_ORDER else 99, role))
        parts = [f"{role} {_cpu(row['cpu_s_per_1000'][role])}" for role in roles]
        rows.append([_label(results, name), ", ".join(parts), _cpu(row["cpu_s_per_1000_total"])])
    if not rows:
        return ""
    return _table(["contender", "CPU seconds per 1,000 requests, by process", "total"], rows, ["l", "l", "r"])


def _memory_section(results: dict) -> str:
    rows = []
    for name in _contender_order(results):
        moments = results["memory"].get(name)
        if not moments:
            continue
        groups: dict[tuple[str, str | None], dict[str, list[int]]] = {}
        for moment in ("before_load", "after_load"):
            for row in moments.get(moment, []):
                key = (row["role"], row.get("function"))
                groups.setdefault(key, {}).setdefault(moment, []).append(row["rss_bytes"])
        ordered = sorted(groups, key=lambda key: (ROLE_ORDER.index(key[0]) if key[0] in ROLE_ORDER else 99, key[1] or ""))
        for role, function in ordered:
            values = groups[(role, function)]
            count = max(len(values.get("before_load", [])), len(values.get("after_load", [])))
            process = role + (f" ({function})" if function else "")
            rows.append([
                _label(results, name), process, str(count),
                _mib(values.get("before_load")), _mib(values.get("after_load")),
            ])
    if not rows:
        return "No memory was measured.\n"
    return ("Resident set size (VmRSS) of each process while idle, as the median over the processes of one kind: "
            "after start-up and warm-up (before the load rounds) and after the last round.\n\n"
            + _table(["contender", "process", "count", "MiB before load", "MiB after load"], rows,
                     ["l", "l", "r", "r", "r"]))


def _mib(values: list[int] | None) -> str:
    return "–" if not values else f"{statistics.median(values) / MIB:.1f}"


def _startup_section(results: dict) -> str:
    startup = results["startup"]
    samples = startup["samples_seconds"]
    if not samples and not startup["failures"]:
        return "Not measured in this run.\n"
    text = (f"`boothby up` with the embedded transport and the trivial function on {startup['workers']} workers, "
            "from starting the command to the first correct response (polled every 5 ms): "
            f"median **{_number(startup['median_seconds'], 2)} s** over {_count(len(samples), 'start')} "
            f"({', '.join(f'{value:.2f}' for value in samples)} s).\n")
    if startup["failures"]:
        text += f"\n{len(startup['failures'])} starts failed; the first error: `{startup['failures'][0][:300]}`\n"
    return text


def _contenders_section(results: dict) -> str:
    descriptions = {
        "boothby": "`boothby up`: grappler and deflector, {workers} Node workers per function, {grappler}",
        "limit": "one Node.js process: `node:http` calling the same handler files (bench/bare_node_server.js)",
    }
    options = results["options"]
    rows = []
    for name in _contender_order(results):
        record = results["contenders"][name]
        if record["kind"] in descriptions:
            setup = descriptions[record["kind"]].format(workers=options["function_workers"],
                                                       grappler=_count(options["grappler_workers"], "grappler worker"))
        elif name == "celery":
            setup = (f"Celery worker (prefork, concurrency {options['function_workers']}) with Redis as broker and result "
                    "backend, behind a threaded Python HTTP front that calls `echo.delay(x).get()` (bench/celery_front.py)")
        else:
            setup = "of-watchdog in http mode in front of bench/bare_node_server.js"
        status = record["status"]
        if record["reason"]:
            status += ": " + " ".join(record["reason"].split())[:400]
        failures = record.get("failures", [])
        if failures and record["status"] == "measured":
            status += f" (started again after {_count(len(failures), 'failure')}; the first: {failures[0][:300]})"
        rows.append([record["label"], setup, str(record["rounds_measured"]), status])
    return _table(["contender", "what runs", "rounds", "status"], rows, ["l", "l", "r", "l"])


def _machine_section(results: dict) -> str:
    machine = results["machine"]
    load = results["load_average"]
    rows = [
        ["CPU", f"{machine['cpu_model']} ({machine['logical_cpus']} logical CPUs, {machine['usable_cpus']} usable)"],
        ["memory", f"{machine['memory_bytes'] / 1024 ** 3:.1f} GiB"],
        ["kernel", f"Linux {machine['kernel']} ({machine['architecture']})"],
        ["operating system", machine["os"]],
        ["load average (1, 5, 15 min)", f"{', '.join(map(str, load['start']))} at the start; "
                                        f"{', '.join(map(str, load['end']))} at the end"],
    ]
    return _table(["", ""], rows, ["l", "l"])


def _versions_section(results: dict) -> str:
    names = {
        "python": "Python", "node": "Node.js", "boothby": "Boothby", "boothby_git": "Boothby revision",
        "gunicorn": "gunicorn", "uvicorn": "uvicorn", "redis": "Redis", "rabbitmq": "RabbitMQ", "kafka": "Kafka",
        "celery": "Celery", "of_watchdog": "of-watchdog", "wrk": "wrk",
    }
    rows = []
    for key, label in names.items():
        version = results["versions"].get(key)
        if key == "of_watchdog" and results["contenders"].get("of-watchdog", {}).get("status") == "skipped":
            version = None  # The reason is in the Contenders table.
        rows.append([label, " ".join(str(version or "not installed").split())[:300]])
    return _table(["component", "version"], rows, ["l", "l"])


def _load_note(results: dict) -> str:
    """Warn when other work competed for the CPUs: a load average above the CPU count at the start or end."""
    cpus = results["machine"]["usable_cpus"]
    highest = max(results["load_average"]["start"][0], results["load_average"]["end"][0])
    if highest <= cpus:
        return ""
    return (f"The 1-minute load average reached {highest:g} on {_count(cpus, 'CPU')} during this run: other work "
            "competed for the CPUs, so every contender is slower than on an idle machine. Compare the "
            "contenders within this run rather than with another run.\n")


def _method_section(results: dict) -> str:
    options = results["options"]
    warm_up = ", then warmed up for 1 s per route," if options.get("warm_up", True) else ""
    return f"""- Every contender runs at the same time on this machine, listening on 127.0.0.1, and serves the same
  two handler files from bench/functions/. Each is checked for a 200 with the exact expected body on
  both routes{warm_up} before anything is measured.
- A round runs every scenario once for every running contender, one after another, with the order of
  the contenders rotated each round; {_count(options['rounds'], 'round')} of {options['duration_seconds']} s per measurement.
  Tables show the median over rounds, and "× limit" divides that median by the bare-Node median of
  the same scenario in the same run.
- Load: wrk with {_count(options['wrk_threads'], 'thread')} and bench/wrk_report.lua, which prints the request count, the
  errors and the p50, p99 and p99.9 latency as JSON when wrk finishes. Errors are socket errors
  (connect, read, write, timeouts after 5 s) plus responses with status 400 or higher, summed over rounds.
- CPU: utime + stime from /proc/PID/stat of every process of the contender (for Boothby: the
  `boothby up` process, grappler master and workers, deflector and Node workers), read before and after each
  measurement, divided by the requests served. "with broker" adds the broker's process tree (from the
  pid file of scripts/brokers/); the brokers are shared with any other work on the machine, so that
  column is an upper bound.
- The machine is shared: other work may run during a run (see the load average above), which is why
  contenders are interleaved and the medians are compared within one run only.
- Other work may also restart the shared brokers. A measurement during which the contender's broker
  restarted (its pid or start time changed) is left out of the medians and listed under its table.
  So is a measurement with errors whose broker restarts within 15 s after it, because a stopping
  broker keeps its pid until it exits. After a restart the harness waits for correct responses before
  the next measurement. A contender that fails is started again at the beginning of the next round,
  at most twice.
"""


def _optimisations_section(existing_page: str) -> str:
    start = existing_page.find(OPTIMISATIONS_HEADING)
    if start < 0:
        return f"{OPTIMISATIONS_HEADING}\n\n{OPTIMISATIONS_PLACEHOLDER}"
    end = existing_page.find("\n## ", start + len(OPTIMISATIONS_HEADING))
    section = existing_page[start:] if end < 0 else existing_page[start:end + 1]
    return section.rstrip("\n") + "\n"


def render_page(results: dict, existing_page: str = "", source: str = "bench/results/latest.json") -> str:
    """Return the Markdown page for ``results``, keeping the Optimisations section of ``existing_page``."""
    options = results["options"]
    command = results["command"]
    run_by = f"`make bench`, which runs `{command}`" if results.get("make_target") == "bench" else f"`{command}`"
    body_bytes = options["echo_body_bytes"]
    scenarios = options["scenarios"]
    parts = [
        "# Benchmarks\n",
        "Boothby on each transport, measured side by side with the same Node.js handlers served by a bare\n"
        "Node.js `http` server (the limit: no platform), by Celery and by OpenFaaS's of-watchdog.\n"
        f"This page is generated by bench/render.py from `{source}`; rerun `make bench` to refresh it.\n"
        "Only the Optimisations section is kept from one run to the next.\n",
        f"Measured from {results['started_at']} for {results['elapsed_seconds'] / 60:.1f} minutes by {run_by}.\n",
        _load_note(results),
        "## Targets\n",
        _targets_section(results),
    ]
    for scenario in scenarios:
        title = _scenario_title(scenario, body_bytes)
        parts += [f"## {title[0].upper()}{title[1:]}\n", _scenario_section(results, scenario)]
    cpu_scenario = "trivial-c32" if "trivial-c32" in scenarios else scenarios[-1]
    parts += [
        f"## CPU by process: {_scenario_title(cpu_scenario, body_bytes)}\n",
        _cpu_section(results, cpu_scenario) or "Not measured.\n",
        "## Memory\n",
        _memory_section(results),
        "## Start-up\n",
        _startup_section(results),
        "## Contenders\n",
        _contenders_section(results),
        "## Machine\n",
        _machine_section(results),
        "## Versions\n",
        _versions_section(results),
        "## Method\n",
        _method_section(results),
        _optimisations_section(existing_page),
    ]
    return "\n".join(part for part in parts if part)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.render", description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", type=Path, default=REPO / "bench" / "results" / "latest.json",
                        help="results JSON written by bench/run.py (default bench/results/latest.json)")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "benchmarks.md",
                        help="the page to write (default docs/benchmarks.md)")
    arguments = parser.parse_args(argv)
    results = json.loads(arguments.results.read_text())
    existing = arguments.output.read_text() if arguments.output.exists() else ""
    source = arguments.results.resolve()
    if source.is_relative_to(REPO):
        source = source.relative_to(REPO)
    arguments.output.write_text(render_page(results, existing, str(source)))
    print(f"page: {arguments.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
