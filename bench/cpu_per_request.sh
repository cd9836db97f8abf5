#!/usr/bin/env bash
# Measure the CPU time per request of each Boothby process while wrk loads a running `boothby up`.
# Usage: bench/cpu_per_request.sh CONFIG [SECONDS] [CONNECTIONS] [URL]
# CPU time, unlike latency, hardly depends on what else runs on the machine, so it compares
# versions of Boothby fairly on a busy machine.
set -euo pipefail
config=$(realpath "$1")
seconds=${2:-5}
connections=${3:-8}
url=${4:-http://127.0.0.1:8080/}

pids=$(pgrep -f -- "-c $config" || true)
for parent in $pids; do pids="$pids $(pgrep -P "$parent" || true)"; done
pids=$(tr " " "\n" <<<"$pids" | sort -un)
[ -n "$pids" ] || { echo "no process runs with -c $config; start boothby up first" >&2; exit 1; }

snapshot() { for pid in $pids; do awk -v pid="$pid" '{print pid, $14 + $15}' "/proc/$pid/stat" 2>/dev/null || true; done | sort; }
before=$(snapshot)
output=$(wrk -t1 -c"$connections" -d"${seconds}s" "$url")
after=$(snapshot)
requests=$(grep -oP '^\s*\K\d+(?= requests in)' <<<"$output")
ticks=$(getconf CLK_TCK)
echo "$requests requests; $(grep Requests/sec <<<"$output")"
join <(echo "$before") <(echo "$after") | while read -r pid start end; do
  name=$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | cut -c1-70)
  awk -v used=$((end - start)) -v ticks="$ticks" -v requests="$requests" -v pid="$pid" -v name="$name" \
    'BEGIN { if (used > 0) printf "%7d  %.3f ms CPU per request  %s\n", pid, used * 1000 / ticks / requests, name }'
done
