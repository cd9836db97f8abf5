"""End to end over real HTTP: grappler, embedded transport, deflector and Node workers."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import threading
import time

import httpx
import pytest

FUNCTIONS = {
    "echo": {"source": "echo", "workers": 2},
    "status": {"source": "status"},
    "throws": {"source": "throws"},
    "logs": {"source": "logs", "workers": 2},
}


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One `boothby up` serving several functions, shared by the read-only tests of this module."""
    from .conftest import Cluster

    cluster = Cluster(tmp_path_factory.mktemp("e2e"))
    cluster.configure(FUNCTIONS)
    cluster.start("up")
    yield cluster
    cluster.stop()


@pytest.fixture
def client(shared):
    with httpx.Client(base_url=shared.base_url, timeout=30) as client:
        yield client


def test_get_returns_event_fields(client):
    response = client.get("/echo/items/7?color=red")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    event = response.json()
    assert event["method"] == "GET"
    assert event["rawPath"] == "/echo/items/7"
    assert event["rawQueryString"] == "color=red"
    assert event["queryStringParameters"] == {"color": "red"}
    assert event["hasBody"] is False


def test_post_text_body(client):
    response = client.post("/echo", content=b'{"a": 1}', headers={"content-type": "application/json"})
    event = response.json()
    assert response.status_code == 200
    assert event["method"] == "POST"
    assert event["body"] == '{"a": 1}'
    assert event["isBase64Encoded"] is False


def test_empty_body_differs_from_no_body(client):
    empty = client.post("/echo", content=b"", headers={"content-type": "text/plain"}).json()
    missing = client.get("/echo").json()
    assert empty["hasBody"] is True
    assert empty["body"] == ""
    assert missing["hasBody"] is False


def test_binary_body_round_trip(client):
    payload = os.urandom(65536) + bytes(range(256))
    response = client.post("/echo?raw=1", content=payload, headers={"content-type": "application/octet-stream"})
    assert response.status_code == 200
    assert response.content == payload


def test_repeated_query_keys_and_headers(client):
    response = client.get(
        "/echo?tag=a&tag=b&tag=&single=1",
        headers=[("x-repeat", "one"), ("x-repeat", "two"), ("cookie", "c1=v1; c2=v2")],
    )
    event = response.json()
    assert event["queryStringParameters"]["tag"] == "a,b,"
    assert event["multiValueQueryStringParameters"]["tag"] == ["a", "b", ""]
    assert event["headers"]["x-repeat"] == "one,two"
    assert event["multiValueHeaders"]["x-repeat"] == ["one", "two"]
    assert event["cookies"] == ["c1=v1", "c2=v2"]


@pytest.mark.parametrize("code", [201, 204, 404, 418])
def test_status_passes_through(client, code):
    response = client.get(f"/status?code={code}")
    assert response.status_code == code
    assert response.headers["x-status"] == str(code)
    if code != 204:
        assert response.text == f"status {code}"


def test_set_cookie_lines_and_repeated_headers(client):
    response = client.get("/status?code=200")
    assert response.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; Path=/; HttpOnly"]
    assert response.headers.get_list("x-multi") == ["one", "two"]


def test_handler_error_is_500_json(client):
    response = client.get("/throws")
    assert response.status_code == 500
    body = response.json()
    assert body["errorType"] == "TypeError"
    assert body["errorMessage"] == "something broke in the handler"
    assert body["requestId"] == response.headers["x-request-id"]
    assert isinstance(body["trace"], list)


def test_every_response_has_request_id(client):
    ids = set()
    for path in ["/echo", "/nope", "/throws", "/status?code=404"]:
        response = client.get(path)
        assert response.headers.get("x-request-id"), path
        ids.add(response.headers["x-request-id"])
    assert len(ids) == 4


def test_unknown_path_is_404_listing_functions(client):
    response = client.get("/nope")
    assert response.status_code == 404
    assert "/echo" in response.json()["message"]


def test_body_over_limit_is_413(client):
    response = client.post("/echo", content=b"x" * (6 * 1024 * 1024 + 1))
    assert response.status_code == 413
    assert "max_body_size" in response.json()["message"]


def test_logs_captured_per_request(client, shared):
    tags = [f"t{number}" for number in range(6)]
    request_ids = {}

    def call(tag):
        response = httpx.get(f"{shared.base_url}/logs?tag={tag}", timeout=30)
        assert response.status_code == 200
        request_ids[tag] = response.headers["x-request-id"]

    threads = [threading.Thread(target=call, args=(tag,)) for tag in tags]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        records = [json.loads(line) for line in shared.logs().splitlines() if line.startswith('{"time"')]
        if sum(1 for record in records if record["function"] == "logs") >= 4 * len(tags):
            break
        time.sleep(0.1)
    for tag in tags:
        mine = [record for record in records if record["request_id"] == request_ids[tag]]
        assert [(record["level"], record["message"]) for record in mine] == [
            ("info", f"log {tag}"),
            ("info", f"info {tag}"),
            ("warn", f"warn {tag}"),
            ("error", f"error {tag}\nsecond line {tag}"),
        ]


def test_single_function_is_also_served_at_root(serve):
    base_url = serve({"echo": {"source": "echo"}})
    response = httpx.get(f"{base_url}/some/path?x=1", timeout=30)
    assert response.status_code == 200
    assert response.json()["rawPath"] == "/some/path"
    assert httpx.get(f"{base_url}/echo/sub", timeout=30).json()["rawPath"] == "/echo/sub"


def _worker_pids(deflector_pid: int) -> set[int]:
    output = subprocess.run(["pgrep", "-P", str(deflector_pid)], capture_output=True, text=True).stdout
    return {int(pid) for pid in output.split()}


def _wait_for_workers(deflector_pid: int, count: int, timeout: float = 15.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = _worker_pids(deflector_pid)
        if len(pids) == count:
            return pids
        time.sleep(0.05)
    raise AssertionError(f"expected {count} workers under deflector {deflector_pid}, found {_worker_pids(deflector_pid)}")


def test_deadline_gives_504_and_replaces_worker(cluster):
    cluster.configure({"hang": {"source": "hang", "timeout": "1s", "workers": 1}})
    deflector = cluster.start("deflector")
    cluster.start("grappler")
    first = _wait_for_workers(deflector.pid, 1)

    started = time.monotonic()
    response = httpx.get(f"{cluster.base_url}/hang", timeout=30)
    elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert response.json()["error"] == "timeout"
    assert response.json()["requestId"] == response.headers["x-request-id"]
    assert 0.9 <= elapsed < 5

    replaced = _wait_for_workers(deflector.pid, 1)
    assert replaced != first
    response = httpx.get(f"{cluster.base_url}/hang?fast=1", timeout=30)
    assert response.status_code == 200
    assert response.text == "fast"


def test_killed_worker_fails_fast_and_is_replaced(cluster):
    cluster.configure({"pid": {"source": "pid", "timeout": "20s", "workers": 2}})
    deflector = cluster.start("deflector")
    cluster.start("grappler")
    pids = _wait_for_workers(deflector.pid, 2)

    results = {}

    def slow_call():
        started = time.monotonic()
        results["response"] = httpx.get(f"{cluster.base_url}/pid?sleep=5000", timeout=30)
        results["elapsed"] = time.monotonic() - started

    thread = threading.Thread(target=slow_call)
    thread.start()
    deadline = time.monotonic() + 5
    busy = None
    while busy is None and time.monotonic() < deadline:
        # The idle worker responds at once; the busy one is the pid that does not show up.
        seen = {int(httpx.get(f"{cluster.base_url}/pid", timeout=5).text) for _ in range(4)}
        if len(seen) == 1:
            busy = (pids - seen).pop()
        time.sleep(0.05)
    assert busy is not None, "could not tell which worker runs the slow request"
    os.kill(busy, signal.SIGKILL)
    thread.join(30)

    response = results["response"]
    assert response.status_code == 502
    assert response.json()["error"] == "worker crashed"
    assert "SIGKILL" in response.json()["message"]
    assert results["elapsed"] < 4

    after = _wait_for_workers(deflector.pid, 2)
    assert busy not in after
    assert httpx.get(f"{cluster.base_url}/pid", timeout=10).status_code == 200
