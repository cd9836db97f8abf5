"""The redis transport: grappler and deflectors as separate processes over the real Redis server.

Redis tests need the server that ``scripts/brokers/redis.sh start`` runs on 127.0.0.1:6379; they
fail, never skip, when it does not respond. Each test uses its own key prefix, so tests can share
the server with other users, and deletes its keys at the end.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import httpx
import pytest
import redis

from boothby.config import build_config
from boothby.errors import ConfigError
from boothby_redis.settings import parse_settings
from boothby_redis.transport import RedisTransport

from .helpers import ROOT
from .packaging import build_wheels, clean_venv

REDIS_URL = "redis://127.0.0.1:6379/0"
REDIS_SCRIPT = ROOT / "scripts" / "brokers" / "redis.sh"
ECHO = {"source": "redis_echo", "timeout": "10s"}


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        client.ping()
    except redis.exceptions.RedisError as error:
        pytest.fail(f"Redis at {REDIS_URL} is not reachable ({error}); start it with scripts/brokers/redis.sh start")
    yield client
    client.close()


@pytest.fixture
def key_prefix(redis_client: redis.Redis, cluster) -> Iterator[str]:
    prefix = f"boothby-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    # Stop the processes first: a running deflector would create its stream again.
    cluster.stop()
    try:
        keys = list(redis_client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            redis_client.delete(*keys)
    except redis.exceptions.RedisError:
        pass  # a test that restarted Redis may leave it briefly unreachable; the keys are tiny


def redis_section(prefix: str, **settings: object) -> dict[str, dict[str, object]]:
    return {"transport.redis": {"url": REDIS_URL, "key_prefix": prefix, **settings}}


def get(base_url: str, query: str = "", timeout: float = 15.0) -> httpx.Response:
    return httpx.get(f"{base_url}/{query}", timeout=timeout)


def worker_pids(deflector_log: str) -> set[int]:
    """Return the pids of the workers that a deflector's log reports as started."""
    return {int(pid) for pid in re.findall(r"worker \d+ started \(pid (\d+)", deflector_log)}


def wait_until(condition, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def consumers(client: redis.Redis, stream: str) -> dict[str, int]:
    """Return the consumers of the deflectors' group on ``stream`` with their pending entry counts."""
    return {entry["name"].decode(): entry["pending"] for entry in client.xinfo_consumers(stream, "deflectors")}


def freshly_blocked_reader(client: redis.Redis, pid: int) -> bool:
    """Return whether the deflector with ``pid`` has an XREADGROUP blocked on the server, sent less than 1s ago.

    The deflector's reads block for 2s, so such a read still waits on the server for at least 1s.
    """
    return any(
        entry.get("name") == f"boothby-deflector-{pid}" and "b" in entry.get("flags", "")
        and entry.get("cmd") == "xreadgroup" and entry.get("idle") == "0"
        for entry in client.client_list()
    )


@pytest.mark.redis
def test_request_served_end_to_end(cluster, redis_client, key_prefix):
    cluster.configure({"echo": ECHO}, transport="redis", sections=redis_section(key_prefix))
    cluster.start("deflector")
    cluster.start("grappler")

    response = get(cluster.base_url, "?tag=first")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tag"] == "first"
    assert body["requestId"] == response.headers["x-request-id"]
    stream = f"{key_prefix}:invocations:echo"
    assert redis_client.xlen(stream) == 0, "a started invocation stays in the stream"
    assert redis_client.xpending(stream, "deflectors")["pending"] == 0


@pytest.mark.redis
def test_two_deflectors_share_load(cluster, key_prefix):
    cluster.configure({"echo": {**ECHO, "workers": 2}}, transport="redis", sections=redis_section(key_prefix))
    first = cluster.start("deflector")
    second = cluster.start("deflector")
    cluster.start("grappler")

    with ThreadPoolExecutor(max_workers=16) as pool:
        responses = list(pool.map(lambda index: get(cluster.base_url, f"?sleep=300&tag={index}"), range(16)))

    assert [response.status_code for response in responses] == [200] * 16
    served_by = {response.json()["pid"] for response in responses}
    assert served_by & worker_pids(first.log()), "the first deflector served nothing"
    assert served_by & worker_pids(second.log()), "the second deflector served nothing"
    assert [response.json()["tag"] for response in responses] == [str(index) for index in range(16)]


@pytest.mark.redis
def test_killed_deflector_queued_invocations_answered(cluster, redis_client, key_prefix):
    cluster.configure({"echo": ECHO}, transport="redis", sections=redis_section(key_prefix, heartbeat_timeout="1s"))
    doomed = cluster.start("deflector")
    survivor = cluster.start("deflector")
    cluster.start("grappler")
    stream = f"{key_prefix}:invocations:echo"

    def doomed_pending() -> dict[str, int]:
        return {name: count for name, count in consumers(redis_client, stream).items() if f":{doomed.pid}:" in name and count}

    # Freeze the doomed deflector while its XREADGROUP waits on the server: Redis then hands it
    # invocations that it never starts, which is what a deflector dying at the worst moment leaves.
    # A read that ends just as the deflector freezes hands it nothing, so that is tried again.
    with ThreadPoolExecutor(max_workers=6) as pool:
        for _ in range(5):
            if not wait_until(lambda: freshly_blocked_reader(redis_client, doomed.pid), timeout=10):
                continue
            doomed.signal(signal.SIGSTOP)
            futures = [pool.submit(get, cluster.base_url, f"?sleep=200&tag={index}") for index in range(6)]
            if wait_until(doomed_pending, timeout=2):
                break
            doomed.signal(signal.SIGCONT)
            assert [future.result().status_code for future in futures] == [200] * 6
        else:
            pytest.fail("in 5 attempts the deflector was never seen blocked in XREADGROUP, or was frozen "
                        "but handed no invocation")
        [doomed_consumer] = doomed_pending()
        doomed.signal(signal.SIGKILL)
        responses = [future.result() for future in futures]

    assert [response.status_code for response in responses] == [200] * 6, [response.text for response in responses]
    assert [response.json()["tag"] for response in responses] == [str(index) for index in range(6)]
    assert {response.json()["pid"] for response in responses} <= worker_pids(survivor.log())
    assert re.search(r"moved [1-9]\d* invocations it had not started back", survivor.log()), survivor.log()[-3000:]
    assert wait_until(lambda: doomed_consumer not in consumers(redis_client, stream), timeout=5), \
        "the dead deflector was not removed from the consumer group"
    assert redis_client.xlen(stream) == 0


@pytest.mark.redis
def test_redis_restart_recovers(cluster, redis_client, key_prefix):
    # Four slots: the interrupted calls keep running on the deflector and must not delay later ones.
    cluster.configure({"echo": {**ECHO, "workers": 4}}, transport="redis", sections=redis_section(key_prefix))
    cluster.start("deflector")
    grappler = cluster.start("grappler")
    assert get(cluster.base_url, "?tag=before").status_code == 200

    with ThreadPoolExecutor(max_workers=3) as pool:
        in_flight = [pool.submit(get, cluster.base_url, f"?sleep=4000&tag=flight{index}") for index in range(3)]
        time.sleep(0.5)
        restart = subprocess.run([str(REDIS_SCRIPT), "restart"], capture_output=True, text=True, timeout=60)
        assert restart.returncode == 0, f"scripts/brokers/redis.sh restart failed:\n{restart.stdout}\n{restart.stderr}"
        interrupted = [future.result() for future in in_flight]

    for response in interrupted:
        assert response.status_code in (502, 503), response.text
        assert "Redis at 127.0.0.1:6379/0" in response.json()["message"]
        waited = response.elapsed.total_seconds()
        assert waited < 3.5, f"an in-flight call took {waited:.1f}s to fail; it should fail when the connection drops"

    assert wait_until(lambda: get(cluster.base_url, "?tag=probe").status_code == 200, timeout=20, interval=0.2), \
        f"no request succeeded within 20s of the restart:\n{grappler.log()[-3000:]}"
    after = [get(cluster.base_url, f"?tag=after{index}") for index in range(10)]
    assert [response.status_code for response in after] == [200] * 10
    assert [response.json()["tag"] for response in after] == [f"after{index}" for index in range(10)]
    assert re.search(r"reconnect attempt \d+ to 127.0.0.1:6379/0 succeeded", grappler.log())


@pytest.mark.redis
def test_late_reply_dropped(cluster, redis_client, key_prefix):
    cluster.configure({"echo": {"source": "redis_echo", "timeout": "2s", "workers": 2}}, transport="redis",
                      sections=redis_section(key_prefix))
    deflector = cluster.start("deflector")
    grappler = cluster.start("grappler")
    stream = f"{key_prefix}:invocations:echo"

    def started() -> bool:
        # A started invocation has been added to the stream and deleted from it again.
        return redis_client.xinfo_stream(stream)["entries-added"] == 1 and redis_client.xlen(stream) == 0

    with ThreadPoolExecutor(max_workers=1) as pool:
        late = pool.submit(get, cluster.base_url, "?sleep=300&tag=late")
        assert wait_until(started, timeout=2, interval=0.01), "the invocation did not start within 2s"
        # A frozen deflector publishes the result only after the grappler gave up on it.
        deflector.signal(signal.SIGSTOP)
        try:
            timed_out = late.result()
        finally:
            deflector.signal(signal.SIGCONT)

    assert timed_out.status_code == 504, timed_out.text
    late_id = timed_out.headers["x-request-id"]
    assert wait_until(lambda: f"reply for request {late_id} arrived after the request ended" in grappler.log(), timeout=10), \
        f"the grappler did not log the dropped reply:\n{grappler.log()[-3000:]}"

    with ThreadPoolExecutor(max_workers=4) as pool:
        responses = list(pool.map(lambda index: get(cluster.base_url, f"?tag=own{index}"), range(12)))
    assert [response.status_code for response in responses] == [200] * 12
    assert [response.json()["tag"] for response in responses] == [f"own{index}" for index in range(12)]
    assert all(response.json()["requestId"] == response.headers["x-request-id"] for response in responses)


@pytest.mark.redis
def test_unix_socket_url_served(cluster, tmp_path):
    server_binary = shutil.which("redis-server")
    assert server_binary, "redis-server is not installed; install it with scripts/brokers/redis.sh start"
    socket_path = tmp_path / "redis.sock"
    server = subprocess.Popen([server_binary, "--port", "0", "--unixsocket", str(socket_path), "--unixsocketperm", "700",
                               "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                              stdout=open(tmp_path / "redis-server.log", "wb"), stderr=subprocess.STDOUT)
    try:
        assert wait_until(socket_path.exists, timeout=10), (tmp_path / "redis-server.log").read_text()
        url = f"unix://{socket_path}?db=0"
        cluster.configure({"echo": ECHO}, transport="redis", sections={"transport.redis": {"url": url, "key_prefix": "unix"}})
        cluster.start("deflector")
        cluster.start("grappler")

        response = get(cluster.base_url, "?tag=unix")

        assert response.status_code == 200, response.text
        assert response.json()["tag"] == "unix"
    finally:
        cluster.stop()
        server.terminate()
        server.wait(10)


def test_packaged_transport_listed(tmp_path):
    wheels = build_wheels(["boothby-core", "boothby-redis"], tmp_path / "dist")
    bin_dir = clean_venv(tmp_path / "venv", wheels)

    listed = json.loads(subprocess.run([str(bin_dir / "boothby"), "plugins", "--json"],
                                       capture_output=True, text=True, check=True, timeout=60).stdout)

    rows = {(plugin["kind"], plugin["name"]): plugin for plugin in listed["plugins"]}
    assert rows[("transport", "redis")]["distribution"] == "boothby-redis"
    assert rows[("transport", "redis")]["version"] == "0.1.0"
    assert listed["failures"] == []
    table = subprocess.run([str(bin_dir / "boothby"), "plugins"], capture_output=True, text=True, check=True, timeout=60).stdout
    assert re.search(r"^redis\s+transport\s+boothby-redis\s+0\.1\.0$", table, re.MULTILINE), table


# Settings validation: no Redis needed.


def make_transport(settings: dict[str, object]) -> RedisTransport:
    config = build_config({"boothby": {"transport": "redis"}, "transport": {"redis": settings},
                           "functions": {"echo": {"source": str(Path(__file__).parent / "functions" / "redis_echo"),
                                                  "handler": "index.handler"}}})
    return RedisTransport(config.settings_for_transport(), config)


def test_settings_defaults():
    settings = parse_settings({}, environ={})

    assert settings.url == "redis://127.0.0.1:6379/0"
    assert settings.key_prefix == "boothby"
    assert settings.heartbeat_timeout == 5.0
    assert settings.max_queue == 10000


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("url", "http://127.0.0.1:6379", "expected a redis://, rediss:// or unix:// URL"),
    ("url", "redis://127.0.0.1:99999/0", "is not a number from 1 to 65535"),
    ("url", "redis://127.0.0.1:6379/cache", "the database 'cache' is not a number"),
    ("key_prefix", "my prefix", "1 to 64 letters, digits"),
    ("key_prefix", "", "a non-empty string"),
    ("max_queue", 0, "a whole number from 1 to 10000000"),
    ("max_queue", "10", "a whole number from 1 to 10000000"),
    ("heartbeat_timeout", "100ms", "a duration from 0.5s to 3600s"),
    ("heartbeat_timeout", "soon", "a duration from 0.5s to 3600s"),
    ("socket_timeout", -1, "a duration from 0.1s to 600s"),
    ("ssl_check_hostname", "yes", "true or false"),
])
def test_settings_invalid_value_rejected(key, value, expected):
    with pytest.raises(ConfigError, match=re.escape(f"transport.redis.{key}")) as raised:
        make_transport({key: value})

    assert expected in str(raised.value)


def test_settings_unknown_key_rejected():
    with pytest.raises(ConfigError, match=r"unknown key transport\.redis\.claim_idle; allowed keys in \[transport\.redis\]: "):
        make_transport({"claim_idle": "5s"})


def test_settings_tls_options_need_rediss():
    with pytest.raises(ConfigError, match=r"ssl_check_hostname is set but transport\.redis\.url does not use TLS"):
        make_transport({"url": "redis://127.0.0.1:6379/0", "ssl_check_hostname": True})


def test_settings_missing_tls_file_rejected(tmp_path):
    missing = tmp_path / "ca.pem"

    with pytest.raises(ConfigError, match=re.escape(f"transport.redis.ssl_ca_certs = '{missing}' is invalid: the file does not exist")):
        make_transport({"url": "rediss://127.0.0.1:6380/0", "ssl_ca_certs": str(missing)})


def test_settings_password_env_missing_rejected():
    with pytest.raises(ConfigError, match="the environment variable BOOTHBY_TEST_UNSET_PASSWORD is not set"):
        parse_settings({"password_env": "BOOTHBY_TEST_UNSET_PASSWORD"}, environ={})


def test_settings_password_never_in_messages():
    settings = parse_settings({"url": "redis://user:hunter2@127.0.0.1:6379/0"}, environ={})
    assert "hunter2" not in settings.server

    with pytest.raises(ConfigError) as raised:
        parse_settings({"url": "redis://user:hunter2@127.0.0.1:6379/cache", "password_env": "SECRET"}, environ={"SECRET": "x"})
    assert "hunter2" not in str(raised.value)
    assert "conflicts with the password inside transport.redis.url" in str(raised.value)


def test_settings_password_from_environment():
    settings = parse_settings({"password_env": "BOOTHBY_TEST_PASSWORD"}, environ={"BOOTHBY_TEST_PASSWORD": "s3cret"})

    assert settings.password_env == "BOOTHBY_TEST_PASSWORD"
    assert "s3cret" not in repr(settings)


@pytest.mark.redis
def test_deflector_sigterm_under_load_loses_nothing(cluster, key_prefix):
    cluster.configure({"slow": {"source": "slow", "workers": 2, "timeout": "20s"}}, transport="redis",
                      sections={**redis_section(key_prefix), "deflector": {"shutdown_grace": "10s"}})
    stopping = cluster.start("deflector")
    cluster.start("deflector")
    cluster.start("grappler")

    with ThreadPoolExecutor(max_workers=24) as executor:
        futures = [executor.submit(get, cluster.base_url, "?ms=400", 30.0) for _ in range(24)]
        time.sleep(0.5)
        stopping.signal(signal.SIGTERM)
        responses = [future.result() for future in futures]

    assert [(response.status_code, response.text) for response in responses if response.status_code != 200] == []
    assert stopping.process.wait(20) == 0
    served_by = {json.loads(response.text)["pid"] for response in responses}
    assert len(served_by) >= 3
