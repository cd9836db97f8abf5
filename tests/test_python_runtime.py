"""The python runtime end to end: real HTTP through ``boothby up`` to Python worker processes.

The distribution is installed from examples/boothby-python-runtime when the environment does not
have it yet. As root, Boothby runs each worker under its own unprivileged user id. When this
interpreter cannot run as such a user (for example one under /root), the workers get a virtual
environment made from the system's python3 with fastavro, in a folder every user can read.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from boothby.errors import ConfigError, RuntimeUnavailable

from .helpers import ROOT

DISTRIBUTION_DIR = ROOT / "examples" / "boothby-python-runtime"
SYSTEM_PYTHONS = ("/usr/bin/python3", "/usr/local/bin/python3")
REDIS_URL = "redis://127.0.0.1:6379/0"


def python_function(source: str, **options: Any) -> dict[str, Any]:
    return {"source": source, "handler": "app.handler", "runtime": "python", **options}


FUNCTIONS = {
    "python_echo": python_function("python_echo", workers=2),
    "python_status": python_function("python_status"),
    "python_throws": python_function("python_throws"),
    "python_logs": python_function("python_logs", workers=2),
    "python_threads": python_function("python_logs", concurrency=4),
    "python_async": python_function("python_async", concurrency=8),
    "python_limits": python_function("python_limits"),
}


def runtime_installed() -> bool:
    return any(
        entry.name == "python" and entry.dist is not None and entry.dist.name == "boothby-python-runtime"
        for entry in importlib.metadata.entry_points(group="boothby.plugins")
    )


@pytest.fixture(scope="session")
def python_runtime() -> None:
    """Install boothby-python-runtime in editable mode unless `make install` already did."""
    if not runtime_installed():
        # Build isolation fetches hatchling and editables, which hatchling's editable wheels need.
        install = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", str(DISTRIBUTION_DIR)],
            capture_output=True, text=True, timeout=300,
        )
        assert install.returncode == 0, f"pip install -e {DISTRIBUTION_DIR} failed:\n{install.stderr[-4000:]}"
        importlib.invalidate_caches()
    assert runtime_installed(), "boothby-python-runtime is not registered in the boothby.plugins entry point group"
    try:
        importlib.import_module("boothby_python.plugin")
    except ModuleNotFoundError:
        # An editable install made during this session is on sys.path only for new processes.
        sys.path.insert(0, str(DISTRIBUTION_DIR / "src"))


@pytest.fixture(scope="session")
def worker_python(python_runtime) -> Iterator[str]:
    """Return an interpreter that passes the runtime's check(): this one, or a readable virtual environment."""
    from boothby_python.plugin import PythonRuntime

    try:
        PythonRuntime({}).check()
    except RuntimeUnavailable as error:
        reason = str(error)
    else:
        yield sys.executable
        return

    base = next((path for path in SYSTEM_PYTHONS if os.path.exists(path)), None)
    if base is None:
        pytest.fail(f"no interpreter for the Python workers: {reason}")
    import fastavro

    directory = tempfile.mkdtemp(prefix="boothby-python-workers-")
    try:
        os.chmod(directory, 0o755)
        # Without pip of its own, the environment is made in seconds; this interpreter's pip fills it.
        subprocess.run([base, "-m", "venv", "--without-pip", directory], check=True, capture_output=True, text=True, timeout=120)
        python = os.path.join(directory, "bin", "python")
        install = subprocess.run(
            [sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--disable-pip-version-check",
             f"fastavro=={fastavro.__version__}"],
            capture_output=True, text=True, timeout=300,
        )
        assert install.returncode == 0, f"installing fastavro into {directory} failed:\n{install.stderr[-4000:]}"
        PythonRuntime({"python": python}).check()
        yield python
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def runtime_section(python: str) -> dict[str, dict[str, Any]]:
    return {"runtime.python": {"python": python}}


@pytest.fixture(scope="module")
def shared(tmp_path_factory, worker_python):
    """One `boothby up` serving the Python functions, shared by the read-only tests of this module."""
    from .conftest import Cluster

    cluster = Cluster(tmp_path_factory.mktemp("python-runtime"))
    cluster.configure(FUNCTIONS, sections=runtime_section(worker_python))
    cluster.start("up")
    yield cluster
    cluster.stop()


@pytest.fixture
def client(shared):
    with httpx.Client(base_url=shared.base_url, timeout=30) as client:
        yield client


def function_logs(cluster, request_ids: set[str], minimum: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Wait until the stdout sink printed at least ``minimum`` records of ``request_ids``, then return them."""
    deadline = time.monotonic() + timeout
    while True:
        records = [json.loads(line) for line in cluster.logs().splitlines() if line.startswith('{"time"')]
        mine = [record for record in records if record["request_id"] in request_ids]
        if len(mine) >= minimum or time.monotonic() > deadline:
            return mine
        time.sleep(0.1)


def call_concurrently(base_url: str, path: str, tags: list[str], **query: str) -> dict[str, httpx.Response]:
    responses: dict[str, httpx.Response] = {}

    def call(tag: str) -> None:
        responses[tag] = httpx.get(f"{base_url}{path}", params={"tag": tag, **query}, timeout=30)

    threads = [threading.Thread(target=call, args=(tag,)) for tag in tags]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return responses


def overlapping_pairs(spans: list[tuple[float, float]]) -> int:
    return sum(1 for i, a in enumerate(spans) for b in spans[i + 1:] if a[0] < b[1] and b[0] < a[1])


def test_get_event_fields(client):
    response = client.get("/python_echo/items/7?color=red", headers={"user-agent": "pytest-agent"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    event = response.json()["event"]
    assert event["version"] == "2.0"
    assert event["routeKey"] == "$default"
    assert event["rawPath"] == "/python_echo/items/7"
    assert event["rawQueryString"] == "color=red"
    assert event["queryStringParameters"] == {"color": "red"}
    assert event["pathParameters"] == {"proxy": "items/7"}
    assert "body" not in event
    assert event["isBase64Encoded"] is False
    http = event["requestContext"]["http"]
    assert http == {"method": "GET", "path": "/python_echo/items/7", "protocol": "HTTP/1.1",
                    "sourceIp": "127.0.0.1", "userAgent": "pytest-agent"}
    context = event["requestContext"]
    assert context["requestId"] == response.headers["x-request-id"]
    assert abs(context["timeEpoch"] / 1000 - time.time()) < 60
    assert context["time"] == time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(context["timeEpoch"] / 1000))


def test_post_text_body(client):
    response = client.post("/python_echo", content=b'{"a": 1}', headers={"content-type": "application/json"})
    event = response.json()["event"]
    assert response.status_code == 200
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["body"] == '{"a": 1}'
    assert event["isBase64Encoded"] is False


def test_empty_body_differs_from_no_body(client):
    empty = client.post("/python_echo", content=b"", headers={"content-type": "text/plain"}).json()
    missing = client.get("/python_echo").json()
    assert empty["hasBody"] is True
    assert empty["event"]["body"] == ""
    assert missing["hasBody"] is False


def test_binary_body_arrives_base64(client):
    payload = bytes(range(256))
    event = client.post("/python_echo", content=payload, headers={"content-type": "image/png"}).json()["event"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == payload


def test_invalid_utf8_text_arrives_base64(client):
    event = client.post("/python_echo", content=b"\xff\xfe", headers={"content-type": "text/plain"}).json()["event"]
    assert event["isBase64Encoded"] is True
    assert event["body"] == "//4="


def test_binary_body_round_trip(client):
    payload = os.urandom(65536) + bytes(range(256))
    response = client.post("/python_echo?raw=1", content=payload, headers={"content-type": "application/octet-stream"})
    assert response.status_code == 200
    assert response.content == payload


def test_repeated_query_keys_and_headers(client):
    response = client.get(
        "/python_echo?tag=a&tag=b&tag=&single=1",
        headers=[("x-repeat", "one"), ("x-repeat", "two"), ("cookie", "c1=v1; c2=v2")],
    )
    event = response.json()["event"]
    assert event["queryStringParameters"]["tag"] == "a,b,"
    assert event["queryStringParameters"]["single"] == "1"
    assert event["multiValueQueryStringParameters"]["tag"] == ["a", "b", ""]
    assert event["headers"]["x-repeat"] == "one,two"
    assert event["multiValueHeaders"]["x-repeat"] == ["one", "two"]
    assert event["cookies"] == ["c1=v1", "c2=v2"]
    assert "cookie" not in event["headers"]
    assert event["multiValueHeaders"]["cookie"] == ["c1=v1; c2=v2"]


@pytest.mark.parametrize("code", [201, 204, 404, 418])
def test_status_passes_through(client, code):
    response = client.get(f"/python_status?code={code}")
    assert response.status_code == code
    assert response.headers["x-status"] == str(code)
    assert "x-skipped" not in response.headers
    if code != 204:
        assert response.text == f"status {code}"


def test_set_cookie_lines_and_repeated_headers(client):
    response = client.get("/python_status?code=200")
    assert response.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; Path=/; HttpOnly"]
    assert response.headers.get_list("x-multi") == ["one", "two"]


@pytest.mark.parametrize(("mode", "body"), [("plain", ["a", 1, None]), ("none", None)])
def test_value_without_status_code_is_json(client, mode, body):
    response = client.get(f"/python_status?mode={mode}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == body


@pytest.mark.parametrize(("mode", "message"), [
    ("bad-status", "statusCode must be an integer from 100 to 599, got 99"),
    ("bad-body", "body must be a str or bytes, got dict"),
    ("not-json", "could not be serialised as JSON"),
])
def test_invalid_result_is_500_json(client, mode, message):
    response = client.get(f"/python_status?mode={mode}")
    assert response.status_code == 500
    body = response.json()
    assert body["errorType"] == "Runtime.InvalidResult"
    assert message in body["errorMessage"]


def test_handler_error_is_500_json(client):
    response = client.get("/python_throws")
    assert response.status_code == 500
    body = response.json()
    assert body["errorType"] == "ValueError"
    assert body["errorMessage"] == "something broke in the handler"
    assert body["requestId"] == response.headers["x-request-id"]
    assert body["trace"][0] == "Traceback (most recent call last):"
    assert body["trace"][-1] == "ValueError: something broke in the handler"
    frames = [line for line in body["trace"] if line.startswith("  File ")]
    assert len(frames) == 2
    assert all("app.py" in frame for frame in frames), "the trace should start in the function's own code"


def test_sys_exit_is_handler_error(client):
    response = client.get("/python_throws?exit=1")
    assert response.status_code == 500
    assert response.json()["errorType"] == "SystemExit"
    assert response.json()["errorMessage"] == "3"
    assert client.get("/python_echo").status_code == 200


def test_context_attributes(client):
    response = client.get("/python_echo")
    context = response.json()["context"]
    assert context["aws_request_id"] == response.headers["x-request-id"]
    assert context["function_name"] == "python_echo"
    assert context["function_version"] == "$LATEST"
    assert context["memory_limit_in_mb"] == "128"
    assert context["log_group_name"] == "/boothby/python_echo"
    assert context["log_stream_name"].endswith(f"/[$LATEST]{response.json()['pid']}")
    assert 0 < context["remaining_ms"] <= 30000


def test_logs_captured_per_request(shared):
    tags = [f"t{number}" for number in range(6)]
    responses = call_concurrently(shared.base_url, "/python_logs", tags)
    request_ids = {tag: responses[tag].headers["x-request-id"] for tag in tags}
    assert all(responses[tag].status_code == 200 for tag in tags)

    records = function_logs(shared, set(request_ids.values()), 4 * len(tags))
    for tag in tags:
        mine = [record for record in records if record["request_id"] == request_ids[tag]]
        assert [(record["level"], record["message"]) for record in mine] == [
            ("info", f"print {tag}"),
            ("info", f"info {tag}"),
            ("warn", f"warn {tag}"),
            ("error", f"error {tag}\nsecond line {tag}"),
        ]
        assert all(record["function"] == "python_logs" for record in mine)


def test_threaded_handlers_keep_logs_apart(shared):
    tags = [f"thread{number}" for number in range(4)]
    responses = call_concurrently(shared.base_url, "/python_threads", tags, sleep="300")
    assert all(responses[tag].status_code == 200 for tag in tags)
    request_ids = {tag: responses[tag].headers["x-request-id"] for tag in tags}

    records = function_logs(shared, set(request_ids.values()), 4 * len(tags))
    for tag in tags:
        messages = [record["message"] for record in records if record["request_id"] == request_ids[tag]]
        assert messages == [f"print {tag}", f"info {tag}", f"warn {tag}", f"error {tag}\nsecond line {tag}"]


def test_async_handlers_run_concurrently(shared):
    tags = [f"async{number}" for number in range(6)]
    responses = call_concurrently(shared.base_url, "/python_async", tags, ms="400")
    assert all(responses[tag].status_code == 200 for tag in tags)
    spans = [(responses[tag].json()["started"], responses[tag].json()["finished"]) for tag in tags]
    assert overlapping_pairs(spans) > 0, f"no two invocations of one worker overlapped: {spans}"

    request_ids = {tag: responses[tag].headers["x-request-id"] for tag in tags}
    records = function_logs(shared, set(request_ids.values()), 2 * len(tags))
    for tag in tags:
        mine = [(record["level"], record["message"]) for record in records if record["request_id"] == request_ids[tag]]
        assert mine == [("info", f"start {tag}"), ("warn", f"end {tag}")]


def test_long_message_truncated(shared):
    response = httpx.get(f"{shared.base_url}/python_limits", params={"size": "70000"}, timeout=30)
    assert response.status_code == 200
    [record] = function_logs(shared, {response.headers["x-request-id"]}, 1)
    assert record["message"] == "x" * 65536 + "... [truncated 4464 bytes]"


def test_records_over_cap_dropped_and_counted(shared):
    response = httpx.get(f"{shared.base_url}/python_limits", params={"count": "1005"}, timeout=30)
    assert response.status_code == 200
    records = function_logs(shared, {response.headers["x-request-id"]}, 1001)
    lines = [record["message"] for record in records if record["message"].startswith("line ")]
    assert lines == [f"line {number}" for number in range(1000)]
    warnings = [record for record in records if record["level"] == "warn"]
    assert [record["message"] for record in warnings] == ["5 log records dropped: the per-invocation log limit was reached"]


def test_warning_logged_as_warn(shared):
    response = httpx.get(f"{shared.base_url}/python_limits", params={"warn": "1"}, timeout=30)
    assert response.status_code == 200
    [record] = function_logs(shared, {response.headers["x-request-id"]}, 1)
    assert record["level"] == "warn"
    assert "UserWarning: careful: check the input" in record["message"]


def test_deadline_gives_504_and_next_request_served(cluster, worker_python):
    cluster.configure({"python_hang": python_function("python_hang", timeout="1s")}, sections=runtime_section(worker_python))
    cluster.start("up")

    started = time.monotonic()
    response = httpx.get(f"{cluster.base_url}/python_hang", timeout=30)
    elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert response.json()["error"] == "timeout"
    assert 0.9 <= elapsed < 5

    deadline = time.monotonic() + 20
    response = httpx.get(f"{cluster.base_url}/python_hang?fast=1", timeout=30)
    while response.status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
        response = httpx.get(f"{cluster.base_url}/python_hang?fast=1", timeout=30)
    assert response.status_code == 200
    assert response.text == "fast"


def test_syntax_error_reported(cluster, worker_python):
    cluster.configure(
        {"python_syntax": python_function("python_syntax"), "python_echo": python_function("python_echo")},
        sections=runtime_section(worker_python),
    )
    process = cluster.start("up")
    process.wait_for_log("SyntaxError: expected ':' (app.py, line 4)")

    response = httpx.get(f"{cluster.base_url}/python_syntax", timeout=30)
    assert response.status_code == 503
    assert "SyntaxError: expected ':' (app.py, line 4)" in response.json()["message"]
    assert httpx.get(f"{cluster.base_url}/python_echo", timeout=30).status_code == 200


def test_plugins_lists_python_runtime(python_runtime):
    output = subprocess.run([sys.executable, "-m", "boothby", "plugins", "--json"], capture_output=True, text=True,
                            check=True, timeout=60).stdout
    rows = {(plugin["kind"], plugin["name"]): plugin for plugin in json.loads(output)["plugins"]}
    assert rows[("runtime", "python")]["distribution"] == "boothby-python-runtime"


def test_check_rejects_missing_interpreter(python_runtime):
    from boothby_python.plugin import PythonRuntime

    with pytest.raises(RuntimeUnavailable, match="'/nonexistent/python3' not found"):
        PythonRuntime({"python": "/nonexistent/python3"}).check()


def test_check_rejects_interpreter_without_fastavro(python_runtime):
    from boothby_python.plugin import PythonRuntime

    # A stand-in interpreter that reports Python 3.12 without fastavro, in a folder every user can
    # read, because as root the check runs it as an unprivileged user.
    directory = tempfile.mkdtemp(prefix="boothby-python-check-")
    try:
        os.chmod(directory, 0o755)
        fake = Path(directory) / "python3"
        fake.write_text('#!/bin/sh\necho \'{"executable": "fake", "version": [3, 12, 0], "fastavro": null, '
                        '"fastavro_error": "ModuleNotFoundError: No module named fastavro"}\'\n')
        fake.chmod(0o755)
        with pytest.raises(RuntimeUnavailable, match="cannot import fastavro"):
            PythonRuntime({"python": str(fake)}).check()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_check_rejects_old_python(python_runtime):
    from boothby_python.plugin import PythonRuntime

    directory = tempfile.mkdtemp(prefix="boothby-python-check-")
    try:
        os.chmod(directory, 0o755)
        fake = Path(directory) / "python3"
        fake.write_text('#!/bin/sh\necho \'{"executable": "fake", "version": [3, 10, 14], "fastavro": "1.9.0", '
                        '"fastavro_error": null}\'\n')
        fake.chmod(0o755)
        with pytest.raises(RuntimeUnavailable, match=r"Python 3\.10\.14 at .* is too old"):
            PythonRuntime({"python": str(fake)}).check()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_settings_rejected_with_every_problem(python_runtime):
    from boothby_python.plugin import PythonRuntime

    with pytest.raises(ConfigError) as raised:
        PythonRuntime({"python": 3, "options": [1], "interpreter": "python3"})
    problems = raised.value.problems
    assert len(problems) == 3
    assert any("[runtime.python] python" in problem for problem in problems)
    assert any("[runtime.python] options" in problem for problem in problems)
    assert any("unknown keys interpreter" in problem for problem in problems)


class DirectWorker:
    """One worker process started without Boothby, speaking the documented RPC protocol over its socket."""

    HANDSHAKE_REQUEST = {
        "type": "record", "name": "HandshakeRequest", "namespace": "org.apache.avro.ipc",
        "fields": [
            {"name": "clientHash", "type": {"type": "fixed", "name": "MD5", "size": 16}},
            {"name": "clientProtocol", "type": ["null", "string"]},
            {"name": "serverHash", "type": "MD5"},
            {"name": "meta", "type": ["null", {"type": "map", "values": "bytes"}]},
        ],
    }
    HANDSHAKE_RESPONSE = {
        "type": "record", "name": "HandshakeResponse", "namespace": "org.apache.avro.ipc",
        "fields": [
            {"name": "match", "type": {"type": "enum", "name": "HandshakeMatch", "symbols": ["BOTH", "CLIENT", "NONE"]}},
            {"name": "serverProtocol", "type": ["null", "string"]},
            {"name": "serverHash", "type": ["null", {"type": "fixed", "name": "MD5", "size": 16}]},
            {"name": "meta", "type": ["null", {"type": "map", "values": "bytes"}]},
        ],
    }

    def __init__(self, directory: Path, function_dir: Path, handler: str) -> None:
        from boothby import codec

        self.protocol_text = json.dumps(codec.worker_protocol(), separators=(",", ":"))
        self.protocol_hash = hashlib.md5(self.protocol_text.encode()).digest()
        self.invocation_schema = codec.invocation_schema()
        self.result_schema = codec.worker_result_schema()
        self.socket_path = str(directory / "rpc.sock")
        read_end, write_end = os.pipe()
        environment = {
            "PATH": os.environ["PATH"], "BOOTHBY_SOCKET": self.socket_path, "BOOTHBY_READY_FD": str(write_end),
            "BOOTHBY_SCHEMAS": str(codec.schema_dir()), "BOOTHBY_FUNCTION_DIR": str(function_dir),
            "BOOTHBY_HANDLER": handler, "BOOTHBY_FUNCTION_NAME": "direct", "BOOTHBY_FUNCTION_VERSION": "$LATEST",
            "BOOTHBY_MEMORY_MB": "128", "BOOTHBY_CONCURRENCY": "2", "BOOTHBY_TIMEOUT_MS": "5000",
            "BOOTHBY_EXIT_ON_DISCONNECT": "1",
            # The function folders are in the repository: leave no __pycache__ there.
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        self.process = subprocess.Popen(
            [sys.executable, str(DISTRIBUTION_DIR / "src" / "boothby_python" / "worker")], cwd=function_dir,
            env=environment, pass_fds=[write_end], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        os.close(write_end)
        with os.fdopen(read_end) as ready:
            self.ready = json.loads(ready.readline() or "null")
        self.connection: Any = None

    def connect(self) -> None:
        import socket

        self.connection = socket.socket(socket.AF_UNIX)
        self.connection.settimeout(10)
        self.connection.connect(self.socket_path)

    def call(self, call_id: int, message: str, invocation: dict[str, Any] | None, handshake: dict[str, Any] | None):
        """Send one request and return the decoded handshake response (or None), the error flag and the response."""
        import io
        import struct

        from fastavro import schemaless_reader, schemaless_writer

        payload = io.BytesIO()
        if handshake is not None:
            schemaless_writer(payload, self.HANDSHAKE_REQUEST, handshake)
        payload.write(b"\x00")  # empty call metadata
        schemaless_writer(payload, "string", message)
        if invocation is not None:
            payload.write(self.invocation_schema.encode_bare(invocation))
        data = payload.getvalue()
        self.connection.sendall(struct.pack(">ii", call_id, 1) + struct.pack(">i", len(data)) + data)

        def receive(size: int) -> bytes:
            chunks = b""
            while len(chunks) < size:
                chunk = self.connection.recv(size - len(chunks))
                assert chunk, "the worker closed the connection"
                chunks += chunk
            return chunks

        answered_id, frames = struct.unpack(">ii", receive(8))
        assert answered_id == call_id
        body = b"".join(receive(struct.unpack(">i", receive(4))[0]) for _ in range(frames))
        stream = io.BytesIO(body)
        answer = schemaless_reader(stream, self.HANDSHAKE_RESPONSE) if handshake is not None else None
        schemaless_reader(stream, {"type": "map", "values": "bytes"})
        failed = stream.read(1) == b"\x01"
        rest = stream.read()
        if failed:
            return answer, True, schemaless_reader(io.BytesIO(rest), ["string"])
        return answer, False, self.result_schema.decode_bare(rest) if rest else None

    def handshake(self, client_hash: bytes | None = None, client_protocol: str | None = None,
                  server_hash: bytes | None = None) -> dict[str, Any]:
        return {"clientHash": client_hash or self.protocol_hash, "clientProtocol": client_protocol,
                "serverHash": server_hash or self.protocol_hash, "meta": None}

    def stop(self) -> str:
        if self.connection is not None:
            self.connection.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self.process.stdout.read().decode(errors="replace") if self.process.stdout else ""


def sample_invocation(**fields: Any) -> dict[str, Any]:
    now = int(time.time() * 1000)
    return {"id": "req-1", "function": "direct", "deadline_ms": now + 5000, "received_ms": now, "reply_to": "test",
            "method": "GET", "path": "/", "raw_path": "/direct", "query_string": "", "query": [], "headers": [],
            "body": None, "source_ip": "127.0.0.1", "protocol": "HTTP/1.1", **fields}


@pytest.fixture
def direct_worker(python_runtime, tmp_path) -> Iterator[Any]:
    workers = []

    def start(handler: str = "app.handler", source: Path = ROOT / "tests" / "functions" / "python_echo") -> DirectWorker:
        worker = DirectWorker(tmp_path, source, handler)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def test_worker_ping_matches_both(direct_worker):
    worker = direct_worker()
    assert worker.ready == {"status": "ready", "pid": worker.process.pid}
    worker.connect()
    answer, failed, response = worker.call(1, "", None, worker.handshake(client_protocol=worker.protocol_text))
    assert answer == {"match": "BOTH", "serverProtocol": None, "serverHash": None, "meta": None}
    assert failed is False
    assert response is None

    answer, failed, result = worker.call(2, "invoke", sample_invocation(), None)
    assert failed is False
    assert result["status"] == 200
    assert json.loads(result["body"])["event"]["rawPath"] == "/direct"


def test_worker_handshake_on_first_invoke(direct_worker):
    worker = direct_worker()
    worker.connect()
    answer, failed, result = worker.call(7, "invoke", sample_invocation(), worker.handshake())
    assert answer["match"] == "BOTH"
    assert failed is False
    assert result["status"] == 200


def test_worker_handshake_client_and_none(direct_worker):
    worker = direct_worker()
    worker.connect()
    unknown = b"\x01" * 16
    unknown_protocol = worker.handshake(client_hash=unknown, server_hash=unknown)
    answer, failed, error = worker.call(1, "invoke", sample_invocation(), unknown_protocol)
    assert answer["match"] == "NONE"
    assert answer["serverHash"] == worker.protocol_hash
    assert failed is True
    assert "unknown client protocol" in error

    protocol_sent = worker.handshake(client_hash=unknown, client_protocol=worker.protocol_text, server_hash=unknown)
    answer, failed, result = worker.call(2, "invoke", sample_invocation(), protocol_sent)
    assert answer["match"] == "CLIENT"
    assert answer["serverProtocol"] == worker.protocol_text
    assert answer["serverHash"] == worker.protocol_hash
    assert failed is False
    assert result["status"] == 200


def test_worker_unknown_message_is_rpc_error(direct_worker):
    worker = direct_worker()
    worker.connect()
    answer, failed, error = worker.call(1, "explode", None, worker.handshake())
    assert answer["match"] == "BOTH"
    assert failed is True
    assert "unknown message 'explode'" in error


def test_worker_exits_when_deflector_disconnects(direct_worker):
    worker = direct_worker()
    worker.connect()
    worker.call(1, "", None, worker.handshake())
    worker.connection.close()
    assert worker.process.wait(10) == 0


@pytest.mark.parametrize(("handler", "error"), [
    ("missing.handler", "Runtime.ImportModuleError: missing.py not found in the function folder"),
    ("app.nothing", "Runtime.HandlerNotFound: app.py has no attribute 'nothing'"),
    ("handler", "Runtime.InvalidHandler: handler 'handler' is not FILE.FUNCTION"),
    ("json.handler", "Runtime.ImportModuleError: json.py not found in the function folder"),
])
def test_worker_reports_handler_not_found(direct_worker, handler, error):
    worker = direct_worker(handler)
    assert worker.ready["status"] == "failed"
    assert worker.ready["error"].startswith(error)
    assert worker.process.wait(10) == 1


def test_worker_rejects_module_name_taken(direct_worker, tmp_path):
    source = tmp_path / "function"
    source.mkdir()
    (source / "logging.py").write_text("def handler(event, context):\n    return 'shadowed'\n")
    worker = direct_worker("logging.handler", source)
    assert worker.ready["status"] == "failed"
    assert "module name 'logging' is already taken" in worker.ready["error"]
    assert "rename logging.py" in worker.ready["error"]


def test_worker_loads_handler_from_subfolder(direct_worker, tmp_path):
    source = tmp_path / "function"
    (source / "src" / "lib").mkdir(parents=True)
    (source / "src" / "lib" / "helper.py").write_text("def greeting():\n    return 'hello from a package'\n")
    (source / "src" / "app.py").write_text(
        "from src.lib.helper import greeting\n\n"
        "async def handler(event, context):\n"
        "    return {'statusCode': 200, 'body': greeting()}\n"
    )
    worker = direct_worker("src/app.handler", source)
    assert worker.ready["status"] == "ready"
    worker.connect()
    _, failed, result = worker.call(1, "invoke", sample_invocation(), worker.handshake())
    assert failed is False
    assert result["body"] == b"hello from a package"


@pytest.mark.redis
def test_served_over_redis_transport(cluster, worker_python):
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        client.ping()
    except redis.exceptions.RedisError as error:
        pytest.fail(f"Redis at {REDIS_URL} is not reachable ({error}); start it with scripts/brokers/redis.sh start")
    prefix = f"boothby-test-{uuid.uuid4().hex[:12]}"
    try:
        cluster.configure(
            {"python_echo": python_function("python_echo")}, transport="redis",
            sections={**runtime_section(worker_python), "transport.redis": {"url": REDIS_URL, "key_prefix": prefix}},
        )
        cluster.start("up")
        response = httpx.post(f"{cluster.base_url}/python_echo/x?k=1&k=2", content=b"hello",
                              headers={"content-type": "text/plain"}, timeout=30)
        assert response.status_code == 200
        event = response.json()["event"]
        assert event["body"] == "hello"
        assert event["multiValueQueryStringParameters"]["k"] == ["1", "2"]
        assert event["requestContext"]["requestId"] == response.headers["x-request-id"]
    finally:
        cluster.stop()
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
