"""Wheels of boothby-core and boothby-node-runtime in a clean virtualenv, with a third-party plugin."""

from __future__ import annotations

import json
import subprocess
import time

import httpx

from .helpers import ROOT, free_port, wait_for_http, write_config
from .packaging import build_wheels, clean_venv


def test_wheels_with_third_party_plugin(tmp_path):
    wheels = build_wheels(["boothby-core", "boothby-node-runtime", "tests/plugins/boothby-test-plugin"], tmp_path / "dist")
    bin_dir = clean_venv(tmp_path / "venv", wheels)
    boothby = str(bin_dir / "boothby")

    listed = json.loads(subprocess.run([boothby, "plugins", "--json"], capture_output=True, text=True, check=True).stdout)
    rows = {(plugin["kind"], plugin["name"]): plugin for plugin in listed["plugins"]}
    assert rows[("transport", "embedded")]["distribution"] == "boothby-core"
    assert rows[("log_sink", "stdout")]["distribution"] == "boothby-core"
    assert rows[("runtime", "node")]["distribution"] == "boothby-node-runtime"
    assert rows[("log_sink", "jsonfile")]["distribution"] == "boothby-test-plugin"
    assert rows[("log_sink", "jsonfile")]["version"] == "1.2.3"
    [failure] = listed["failures"]
    assert failure["name"] == "broken"
    assert failure["distribution"] == "boothby-test-plugin"
    assert "broken on purpose" in failure["reason"]

    table = subprocess.run([boothby, "plugins"], capture_output=True, text=True, check=True).stdout
    assert "boothby-node-runtime" in table
    assert "Failed to load:" in table

    port = free_port()
    log_file = tmp_path / "function-logs.jsonl"
    config = write_config(
        tmp_path, {"hello": {"source": str(ROOT / "examples" / "hello")}}, port=port,
        log_sinks=("jsonfile",), sections={"log_sink.jsonfile": {"path": str(log_file)}},
    )
    invoked = subprocess.run([boothby, "-c", str(config), "invoke", "hello", "/?name=Wheel"],
                             capture_output=True, text=True, timeout=60)
    assert invoked.returncode == 0, invoked.stderr
    assert "HTTP 200" in invoked.stdout
    assert "Hello, Wheel!" in invoked.stdout
    assert "greeting Wheel" in invoked.stderr

    up = subprocess.Popen([boothby, "-c", str(config), "up"], stdout=open(tmp_path / "clean-up.log", "wb"),
                          stderr=subprocess.STDOUT)
    try:
        wait_for_http(f"http://127.0.0.1:{port}", timeout=30, function_path="/?name=Plugin")
        response = httpx.get(f"http://127.0.0.1:{port}/?name=Plugin", timeout=10)
        assert response.status_code == 200
        assert response.text == "Hello, Plugin!\n"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and response.headers["x-request-id"] not in (log_file.read_text() if log_file.exists() else ""):
            time.sleep(0.1)
        records = [json.loads(line) for line in log_file.read_text().splitlines()]
        mine = [record for record in records if record["request_id"] == response.headers["x-request-id"]]
        assert [record["message"] for record in mine] == [f"greeting Plugin (request {response.headers['x-request-id']})"]
    finally:
        up.terminate()
        up.wait(30)
