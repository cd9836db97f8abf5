"""Node functions written for AWS Lambda run unchanged, and one worker serves several invocations at once."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from .helpers import FUNCTIONS


@pytest.fixture(scope="module")
def npm_functions(tmp_path_factory):
    """Copy the functions that need npm packages and install those packages from the npm registry."""
    root = tmp_path_factory.mktemp("npm-functions")
    for name in ("express_app", "lodash_handler"):
        shutil.copytree(FUNCTIONS / name, root / name)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--omit=dev"], cwd=root / name,
                       check=True, capture_output=True, timeout=300)
    return root


def function_logs(cluster, request_id):
    deadline = time.monotonic() + 10
    records = []
    while time.monotonic() < deadline:
        records = [json.loads(line) for line in cluster.logs().splitlines() if line.startswith('{"time"')]
        records = [record for record in records if record["request_id"] == request_id]
        if records:
            return records
        time.sleep(0.1)
    return records


def test_express_app_with_serverless_http(cluster, npm_functions):
    cluster.configure({"api": {"source": str(npm_functions / "express_app"), "handler": "app.handler"}})
    cluster.start("up")

    response = httpx.get(f"{cluster.base_url}/users/42?fields=name&fields=email", timeout=30)
    assert response.status_code == 200
    assert response.json() == {"id": "42", "query": {"fields": ["name", "email"]}}
    assert response.headers["x-handled-by"] == "express"
    assert response.headers.get_list("set-cookie") == ["session=abc; Path=/", "theme=dark; Path=/"]
    assert [record["message"] for record in function_logs(cluster, response.headers["x-request-id"])] == ["looking up user 42"]

    created = httpx.post(f"{cluster.base_url}/items", json={"name": "lamp"}, timeout=30)
    assert created.status_code == 201
    assert created.json() == {"created": {"name": "lamp"}}

    teapot = httpx.get(f"{cluster.base_url}/teapot", timeout=30)
    assert teapot.status_code == 418
    assert teapot.text == "short and stout"


def test_handler_using_npm_library(cluster, npm_functions):
    cluster.configure({"words": {"source": str(npm_functions / "lodash_handler")}})
    cluster.start("up")
    response = httpx.post(f"{cluster.base_url}/words", content="The cat saw the other cat",
                          headers={"content-type": "text/plain"}, timeout=30)
    assert response.status_code == 200
    assert response.json() == {"counts": {"the": 2, "cat": 2, "saw": 1, "other": 1}, "longest": "other"}


def test_concurrent_invocations_keep_their_logs(cluster):
    cluster.configure({"interleave": {"source": "interleave", "workers": 1, "concurrency": 8, "timeout": "10s"}})
    cluster.start("up")
    tags = [f"inv{number}" for number in range(8)]

    with ThreadPoolExecutor(max_workers=8) as executor:
        responses = list(executor.map(
            lambda tag: httpx.get(f"{cluster.base_url}/interleave?tag={tag}&together=8", timeout=30), tags))

    assert [response.status_code for response in responses] == [200] * 8
    bodies = [response.json() for response in responses]
    assert len({body["pid"] for body in bodies}) == 1
    assert all(0 < body["remaining"] <= 10000 for body in bodies)
    assert [body["peak"] for body in bodies] == [8] * 8

    for tag, response in zip(tags, responses):
        messages = [record["message"] for record in function_logs(cluster, response.headers["x-request-id"])]
        steps = next(body["steps"] for body in bodies if body["tag"] == tag)
        assert messages == [f"{tag} step {step}" for step in range(steps)] + [f"{tag} timer"]
