"""Graceful shutdown of the grappler, the deflector and `boothby up`: requests in flight get a response."""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx


def call_in_background(url: str, results: list) -> threading.Thread:
    def call() -> None:
        started = time.monotonic()
        try:
            response = httpx.get(url, timeout=30)
            results.append((response.status_code, response.text, time.monotonic() - started))
        except httpx.HTTPError as error:
            results.append((None, repr(error), time.monotonic() - started))

    thread = threading.Thread(target=call)
    thread.start()
    return thread


def test_grappler_sigterm_finishes_held_requests(cluster):
    cluster.configure({"slow": {"source": "slow", "workers": 4}}, sections={"grappler": {"graceful_timeout": "10s"}})
    cluster.start("deflector")
    grappler = cluster.start("grappler")

    results: list = []
    threads = [call_in_background(f"{cluster.base_url}/slow?ms=1500", results) for _ in range(4)]
    time.sleep(0.5)
    grappler.signal(signal.SIGTERM)
    for thread in threads:
        thread.join(30)

    assert [status for status, _, _ in results] == [200] * 4
    assert grappler.process.wait(15) == 0
    try:
        httpx.get(f"{cluster.base_url}/slow?ms=1", timeout=2)
    except httpx.ConnectError:
        pass
    else:
        raise AssertionError("the grappler still accepts connections after SIGTERM")


def test_grappler_sigterm_503s_at_end_of_grace(cluster):
    cluster.configure({"slow": {"source": "slow", "workers": 1, "timeout": "30s"}},
                      sections={"grappler": {"graceful_timeout": "3s"}, "deflector": {"shutdown_grace": "1s"}})
    cluster.start("deflector")
    grappler = cluster.start("grappler")

    results: list = []
    thread = call_in_background(f"{cluster.base_url}/slow?ms=20000", results)
    time.sleep(0.5)
    grappler.signal(signal.SIGTERM)
    thread.join(30)

    [(status, body, elapsed)] = results
    assert status == 503
    assert "shutting down" in body
    assert elapsed < 5
    assert grappler.process.wait(15) == 0


def test_deflector_sigterm_finishes_running_and_answers_queued(cluster):
    cluster.configure({"slow": {"source": "slow", "workers": 1, "timeout": "30s"}},
                      sections={"deflector": {"shutdown_grace": "10s"}})
    deflector = cluster.start("deflector")
    cluster.start("grappler")

    results: list = []
    threads = [call_in_background(f"{cluster.base_url}/slow?ms=1500", results) for _ in range(3)]
    time.sleep(0.7)
    deflector.signal(signal.SIGTERM)
    for thread in threads:
        thread.join(30)

    statuses = sorted(status for status, _, _ in results)
    assert statuses == [200, 503, 503]
    assert all("shutting down" in body for status, body, _ in results if status == 503)
    assert deflector.process.wait(15) == 0
    assert "responding 503 to them" in deflector.log()


def test_ctrl_c_on_up_drains_requests(cluster):
    cluster.configure({"slow": {"source": "slow", "workers": 1}})
    up = cluster.start("up")

    results: list = []
    thread = call_in_background(f"{cluster.base_url}/slow?ms=2000", results)
    time.sleep(0.7)
    # A terminal's Ctrl-C sends SIGINT to the whole foreground process group.
    os.killpg(up.pid, signal.SIGINT)
    thread.join(30)

    [(status, body, _)] = results
    assert status == 200, body
    assert up.process.wait(30) == 0
    assert "second SIGINT" not in up.log()
    assert "second SIGTERM" not in up.log()
