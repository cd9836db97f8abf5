"""Run benchmark variants in interleaved rounds and summarize their p50 latencies.

On a shared machine a single run measures the neighbours as much as the code. Interleaving
the variants round by round exposes them to the same load, and the median and minimum of
each variant's p50 over the rounds are steadier than any single run.

    python bench/compare.py --rounds 5 -- "hop.py --io asyncio" "hop.py --io bridged"
    python bench/compare.py --rounds 5 -- "http.py --transport embedded" "http.py"

Each variant is a bench script in this folder with its arguments; ``--count`` defaults to 2000.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
P50 = re.compile(r"p50=([0-9.]+) ms")


def run_variant(variant: str, count: int, timeout: float) -> tuple[float, str]:
    script, *arguments = shlex.split(variant)
    if "--count" not in arguments:
        arguments += ["--count", str(count)]
    completed = subprocess.run([sys.executable, str(HERE / script), *arguments], capture_output=True, text=True,
                               timeout=timeout)
    match = P50.search(completed.stdout)
    if completed.returncode != 0 or match is None:
        raise SystemExit(f"{variant!r} failed with exit code {completed.returncode}:\n{completed.stdout}{completed.stderr}")
    return float(match.group(1)), completed.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--count", type=int, default=2000, help="requests per run unless a variant sets --count")
    parser.add_argument("--timeout", type=float, default=300, help="seconds one run may take")
    parser.add_argument("variants", nargs="+", help="bench script and arguments, quoted, such as \"hop.py --io bridged\"")
    args = parser.parse_args()

    results: dict[str, list[float]] = {variant: [] for variant in args.variants}
    for round_number in range(1, args.rounds + 1):
        for variant in args.variants:
            p50, line = run_variant(variant, args.count, args.timeout)
            results[variant].append(p50)
            print(f"round {round_number}: {line}", flush=True)

    load = os.getloadavg()
    print(f"\nload average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    width = max(len(variant) for variant in results)
    for variant, values in results.items():
        print(f"{variant.ljust(width)}  p50 median {statistics.median(values):.3f} ms  min {min(values):.3f} ms  "
              f"over {len(values)} runs")


if __name__ == "__main__":
    main()
