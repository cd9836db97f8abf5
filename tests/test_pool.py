"""The elastic pool: growth under a spike, shrinking when idle, recycling, and start failures."""

from __future__ import annotations

import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import httpx


def worker_count(deflector_pid: int) -> int:
    output = subprocess.run(["pgrep", "-P", str(deflector_pid)], capture_output=True, text=True).stdout
    return len(output.split())


def wait_for_count(deflector_pid: int, expected: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker_count(deflector_pid) == expected:
            return
        time.sleep(0.1)
    raise AssertionError(f"expected {expected} workers, found {worker_count(deflector_pid)}")


def test_spike_grows_then_shrinks(cluster):
    cluster.configure({"slow": {"source": "slow", "min_workers": 1, "max_workers": 8, "idle_timeout": "1s",
                                "timeout": "20s"}})
    deflector = cluster.start("deflector")
    cluster.start("grappler")
    wait_for_count(deflector.pid, 1, 10)

    with ThreadPoolExecutor(max_workers=16) as executor:
        responses = list(executor.map(
            lambda _: httpx.get(f"{cluster.base_url}/slow?ms=1500", timeout=30), range(16)))

    assert [(response.status_code, response.text) for response in responses if response.status_code != 200] == []
    pids = {json.loads(response.text)["pid"] for response in responses}
    assert len(pids) > 2
    assert "growing from" in deflector.log()

    wait_for_count(deflector.pid, 1, 15)
    assert "shrinking towards 1" in deflector.log()
    assert httpx.get(f"{cluster.base_url}/slow?ms=1", timeout=10).status_code == 200


def test_worker_recycled_after_max_invocations(cluster):
    cluster.configure({"pid": {"source": "pid", "workers": 1, "max_invocations": 3}})
    deflector = cluster.start("deflector")
    cluster.start("grappler")

    pids = [httpx.get(f"{cluster.base_url}/pid", timeout=10).text for _ in range(9)]
    assert [response for response in pids if not response.isdigit()] == []
    assert len(set(pids[0:3])) == 1
    assert len(set(pids)) == 3
    assert "recycled after 3 invocations" in deflector.log()
    wait_for_count(deflector.pid, 1, 10)


def test_start_failure_backs_off_and_answers_503(cluster):
    cluster.configure({
        "broken": {"source": "broken", "workers": 1},
        "pid": {"source": "pid", "workers": 1},
    })
    deflector = cluster.start("deflector")
    cluster.start("grappler")

    assert httpx.get(f"{cluster.base_url}/pid", timeout=10).status_code == 200
    response = httpx.get(f"{cluster.base_url}/broken", timeout=10)
    assert response.status_code == 503
    assert "SyntaxError" in response.json()["message"]
    assert response.json()["requestId"] == response.headers["x-request-id"]

    deflector.wait_for_log("worker start failed (attempt 2)", timeout=15)
    attempts = [line for line in deflector.log().splitlines() if "worker start failed (attempt" in line]
    assert len(attempts) <= 3
