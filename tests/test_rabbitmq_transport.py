"""The rabbitmq transport: grappler and deflectors as separate processes over the real RabbitMQ broker.

These tests need the broker that ``scripts/brokers/rabbitmq.sh start`` runs on 127.0.0.1:5672; they
fail, never skip, when it does not respond. Each test uses its own queue prefix, so tests can
share the broker with other users, and deletes its function queues at the end. One test restarts
the broker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import signal
import ssl
import subprocess
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator

import httpx
import pika
import pika.exceptions
import pytest

from boothby.config import FunctionConfig, build_config
from boothby.errors import ConfigError, TransportUnavailable
from boothby_rabbitmq.settings import parse_settings, redact_url
from boothby_rabbitmq.transport import RabbitMQTransport

from .helpers import ROOT
from .packaging import build_wheels, clean_venv

BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
BROKER_SCRIPT = ROOT / "scripts" / "brokers" / "rabbitmq.sh"
ECHO = {"source": "rabbitmq_echo", "timeout": "10s"}

pytestmark = pytest.mark.rabbitmq


# Helpers.


def open_broker_connection() -> pika.BlockingConnection:
    parameters = pika.URLParameters(BROKER_URL)
    parameters.socket_timeout = 5
    parameters.connection_attempts = 1
    return pika.BlockingConnection(parameters)


class Broker:
    """The test's own view of the broker: queue counts and clean-up, over a blocking pika connection."""

    def queue_counts(self, queue: str) -> tuple[int, int]:
        """Return the ready messages and the consumers of ``queue``, which must exist."""
        connection = open_broker_connection()
        try:
            method = connection.channel().queue_declare(queue, passive=True).method
            return method.message_count, method.consumer_count
        finally:
            connection.close()

    def unacknowledged(self, queue: str) -> int:
        """Return how many messages of ``queue`` are delivered but not acknowledged, from rabbitmqctl."""
        output = subprocess.run(
            [str(BROKER_SCRIPT), "ctl", "list_queues", "-q", "name", "messages_unacknowledged"],
            check=True, capture_output=True, text=True, timeout=60,
        ).stdout
        for line in output.splitlines():
            name, _, count = line.partition("\t")
            if name == queue:
                return int(count)
        raise AssertionError(f"rabbitmqctl list_queues does not list {queue}:\n{output}")

    def delete_queues(self, queues: list[str]) -> None:
        connection = open_broker_connection()
        try:
            channel = connection.channel()
            for queue in queues:
                channel.queue_delete(queue)
        finally:
            connection.close()


@pytest.fixture
def broker() -> Broker:
    try:
        open_broker_connection().close()
    except (pika.exceptions.AMQPError, OSError) as error:
        pytest.fail(f"RabbitMQ at 127.0.0.1:5672 is not reachable ({error!r}); "
                    "start it with scripts/brokers/rabbitmq.sh start")
    return Broker()


@pytest.fixture
def queue_prefix(broker: Broker, cluster) -> Iterator[str]:
    prefix = f"boothby-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    # Stop the processes first: a running grappler or deflector would declare the queue again.
    cluster.stop()
    try:
        broker.delete_queues([f"{prefix}.invoke.echo"])
    except (pika.exceptions.AMQPError, OSError):
        pass  # a test that restarted the broker may leave it briefly unreachable; an empty queue is tiny


def rabbitmq_section(prefix: str, **settings: object) -> dict[str, dict[str, object]]:
    return {"transport.rabbitmq": {"url": BROKER_URL, "queue_prefix": prefix, **settings}}


def started_tags(deflector_log: str) -> list[str]:
    """Return the tags of the runs that a deflector's log shows the echo function starting, in order."""
    return re.findall(r"rabbitmq-echo started (\S*)", deflector_log)


def get(base_url: str, query: str = "", timeout: float = 20.0) -> httpx.Response:
    return httpx.get(f"{base_url}/{query}", timeout=timeout)


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def worker_pids(deflector_log: str) -> set[int]:
    """Return the pids of the workers that a deflector's log reports as started."""
    return {int(pid) for pid in re.findall(r"worker \d+ started \(pid (\d+)", deflector_log)}


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def late_reply_count(grappler_log: str) -> int:
    counts = re.findall(r"dropped \((\d+) late replies so far\)", grappler_log)
    return int(counts[-1]) if counts else 0


# End to end.


def test_request_served_end_to_end(cluster, broker, queue_prefix):
    # The URL carries wrong credentials: the ones read from username_env and password_env win.
    section = rabbitmq_section(queue_prefix, url="amqp://nobody:wrong-secret@127.0.0.1:5672/%2F",
                               username_env="TEST_RABBITMQ_USER", password_env="TEST_RABBITMQ_PASSWORD")
    cluster.configure({"echo": ECHO}, transport="rabbitmq", sections=section)
    credentials = {"TEST_RABBITMQ_USER": "guest", "TEST_RABBITMQ_PASSWORD": "guest"}
    deflector = cluster.start("deflector", env=credentials)
    cluster.start("grappler", env=credentials)

    response = get(cluster.base_url, "?tag=first")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tag"] == "first"
    assert body["requestId"] == response.headers["x-request-id"]
    assert body["deflectorPid"] == deflector.pid
    health = get(cluster.base_url, "_boothby/health").json()
    assert health["status"] == "ok"
    assert health["transport"] == "rabbitmq"
    ready, consumers = broker.queue_counts(f"{queue_prefix}.invoke.echo")
    assert ready == 0, "an answered invocation is still in the queue"
    assert consumers == 1, "the idle deflector should have one consumer waiting on the queue"
    logs = cluster.logs()
    assert "wrong-secret" not in logs, "a password from the URL was logged"
    assert "connected to amqp://nobody:***@127.0.0.1:5672/%2F" in logs


def test_two_deflectors_share_load(cluster, queue_prefix):
    cluster.configure({"echo": {**ECHO, "workers": 2}}, transport="rabbitmq", sections=rabbitmq_section(queue_prefix))
    first = cluster.start("deflector")
    second = cluster.start("deflector")
    cluster.start("grappler")

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda index: get(cluster.base_url, f"?tag=r{index}&sleep=100"), range(24)))

    assert all(response.status_code == 200 for response in responses), [r.text for r in responses if r.status_code != 200]
    assert sorted(response.json()["tag"] for response in responses) == sorted(f"r{index}" for index in range(24))
    served_by = [response.json()["deflectorPid"] for response in responses]
    assert served_by.count(first.pid) >= 4, f"the first deflector served {served_by.count(first.pid)} of 24 requests"
    assert served_by.count(second.pid) >= 4, f"the second deflector served {served_by.count(second.pid)} of 24 requests"


def test_busy_deflector_takes_nothing(cluster, queue_prefix):
    cluster.configure({"echo": {**ECHO, "workers": 1}}, transport="rabbitmq", sections=rabbitmq_section(queue_prefix))
    first = cluster.start("deflector")
    second = cluster.start("deflector")
    cluster.start("grappler")

    with ThreadPoolExecutor(max_workers=4) as pool:
        slow: Future[httpx.Response] = pool.submit(get, cluster.base_url, "?tag=slow&sleep=3000")
        assert wait_until(lambda: "slow" in started_tags(cluster.logs()), 10), "no deflector started the slow request"
        started = time.monotonic()
        quick = [get(cluster.base_url, f"?tag=quick{index}") for index in range(5)]
        quick_seconds = time.monotonic() - started
        slow_response = slow.result()

    assert slow_response.status_code == 200, slow_response.text
    busy = slow_response.json()["deflectorPid"]
    idle = second.pid if busy == first.pid else first.pid
    assert all(response.status_code == 200 for response in quick), [r.text for r in quick]
    served_by = [response.json()["deflectorPid"] for response in quick]
    assert served_by == [idle] * 5, (
        f"the busy deflector (pid {busy}) took some of the requests that the idle one (pid {idle}) could run: {served_by}"
    )
    assert quick_seconds < 2.0, f"5 quick requests took {quick_seconds:.2f}s while the idle deflector was free"


# Failures.


def test_killed_deflector_invocations_answered_by_other(cluster, broker, queue_prefix):
    queue = f"{queue_prefix}.invoke.echo"
    cluster.configure({"echo": {**ECHO, "workers": 2}}, transport="rabbitmq",
                      sections=rabbitmq_section(queue_prefix))
    doomed = cluster.start("deflector")
    doomed_workers = worker_pids(doomed.log())
    cluster.start("grappler")
    assert wait_until(lambda: broker.queue_counts(queue)[1] == 1, 10), "the first deflector never started consuming"

    # A stopped deflector still has its consumer: the broker delivers it as many invocations as
    # it has free slots (2), and they stay unacknowledged because it cannot run them.
    doomed.signal(signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            pending = [pool.submit(get, cluster.base_url, f"?tag=k{index}", 30.0) for index in range(6)]
            assert wait_until(lambda: broker.queue_counts(queue)[0] == 4, 10), (
                f"expected 4 ready invocations, found {broker.queue_counts(queue)[0]}"
            )
            assert broker.unacknowledged(queue) == 2, "the stopped deflector should hold exactly its 2 free slots"

            survivor = cluster.start("deflector")
            assert wait_until(lambda: len(started_tags(survivor.log())) == 4, 15), started_tags(cluster.logs())
            os.kill(doomed.pid, signal.SIGKILL)
            responses = [future.result() for future in pending]
    finally:
        doomed.signal(signal.SIGCONT)

    assert [response.status_code for response in responses] == [200] * 6, [r.text for r in responses]
    assert {response.json()["deflectorPid"] for response in responses} == {survivor.pid}
    assert started_tags(doomed.log()) == [], "the stopped deflector ran an invocation"
    assert sorted(started_tags(survivor.log())) == sorted(f"k{index}" for index in range(6)), "an invocation ran twice or never"
    assert wait_until(lambda: not any(pid_alive(pid) for pid in doomed_workers), 10), (
        "the killed deflector's workers did not exit after their deflector died"
    )


def test_broker_restart_recovers(cluster, broker, queue_prefix):
    cluster.configure({"echo": {**ECHO, "workers": 2}}, transport="rabbitmq", sections=rabbitmq_section(queue_prefix))
    deflector = cluster.start("deflector")
    grappler = cluster.start("grappler")
    assert get(cluster.base_url, "?tag=before").status_code == 200

    statuses: dict[int, int] = {}
    failures: list[httpx.Response] = []
    stop_traffic = time.monotonic() + 90

    def traffic() -> None:
        index = 0
        while time.monotonic() < stop_traffic and index < 2000:
            try:
                response = get(cluster.base_url, f"?tag=t{index}", timeout=15.0)
            except httpx.HTTPError:
                time.sleep(0.05)
                continue
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code != 200:
                failures.append(response)
            index += 1
            time.sleep(0.02)

    with ThreadPoolExecutor(max_workers=2) as pool:
        waiting = pool.submit(get, cluster.base_url, "?tag=waiting&sleep=6000")
        assert wait_until(lambda: "waiting" in started_tags(deflector.log()), 10)
        running = pool.submit(traffic)
        time.sleep(0.5)
        subprocess.run([str(BROKER_SCRIPT), "restart"], check=True, timeout=120, capture_output=True)
        restarted = time.monotonic()
        waiting_response = waiting.result()
        assert wait_until(lambda: get(cluster.base_url, "?tag=after").status_code == 200, 30, interval=0.2), (
            "no request succeeded within 30s of the broker restart:\n" + cluster.logs()[-4000:]
        )
        recovered_after = time.monotonic() - restarted
        stop_traffic = time.monotonic() + 1.0
        running.result()

    # The call waiting for its reply fails as soon as the connection drops, not at its deadline.
    assert waiting_response.status_code == 502, waiting_response.text
    assert waiting_response.elapsed.total_seconds() < 6.0
    assert "the request may or may not have run" in waiting_response.json()["message"]
    assert statuses.get(200, 0) > 0
    assert set(statuses) <= {200, 502, 503}, f"unexpected statuses during the restart: {statuses}"
    for response in failures:
        body = response.json()
        assert body["error"] in ("transport failure", "transport unavailable"), body
        assert "RabbitMQ at amqp://guest:***@127.0.0.1:5672/%2F" in body["message"], body
    assert recovered_after < 30
    for process in (deflector, grappler):
        log = process.log()
        assert re.search(r"reconnect attempt \d+ succeeded", log), f"pid {process.pid} logged no successful reconnect"
        assert "guest:guest" not in log


def test_late_reply_dropped_and_counted(cluster, queue_prefix):
    cluster.configure({"echo": {**ECHO, "timeout": "1s", "workers": 2}}, transport="rabbitmq",
                      sections=rabbitmq_section(queue_prefix))
    deflector = cluster.start("deflector")
    grappler = cluster.start("grappler")

    with ThreadPoolExecutor(max_workers=1) as pool:
        late = pool.submit(get, cluster.base_url, "?tag=late&sleep=300")
        assert wait_until(lambda: "late" in started_tags(deflector.log()), 10), deflector.log()[-3000:]
        # Freeze the deflector while the function runs: the grappler gives up at the deadline,
        # and the result the deflector publishes once it continues arrives after that.
        deflector.signal(signal.SIGSTOP)
        try:
            late_response = late.result()
        finally:
            deflector.signal(signal.SIGCONT)

    assert late_response.status_code == 504, late_response.text
    assert wait_until(lambda: late_reply_count(grappler.log()) == 1, 10), grappler.log()[-3000:]

    with ThreadPoolExecutor(max_workers=4) as pool:
        responses = list(pool.map(lambda index: get(cluster.base_url, f"?tag=after{index}"), range(8)))
    assert all(response.status_code == 200 for response in responses), [r.text for r in responses]
    for index, response in enumerate(responses):
        assert response.json()["tag"] == f"after{index}"
        assert response.json()["requestId"] == response.headers["x-request-id"]
    assert late_reply_count(grappler.log()) == 1


def test_expired_invocation_never_runs(cluster, broker, queue_prefix):
    queue = f"{queue_prefix}.invoke.echo"
    cluster.configure({"echo": {**ECHO, "timeout": "1s"}}, transport="rabbitmq",
                      sections=rabbitmq_section(queue_prefix))
    cluster.start("grappler")

    with ThreadPoolExecutor(max_workers=3) as pool:
        stale = list(pool.map(lambda index: get(cluster.base_url, f"?tag=stale{index}"), range(3)))
    assert [response.status_code for response in stale] == [504] * 3, [r.text for r in stale]
    time.sleep(0.5)  # every invocation is now well past its deadline

    deflector = cluster.start("deflector")
    fresh = get(cluster.base_url, "?tag=fresh")

    assert fresh.status_code == 200, fresh.text
    assert started_tags(deflector.log()) == ["fresh"], "an expired invocation ran"
    assert broker.queue_counts(queue)[0] == 0
    assert "expired" not in deflector.log(), "the broker delivered an expired invocation instead of discarding it"


def test_lost_connection_invocation_not_started(broker, queue_prefix):
    config = build_config({"boothby": {"transport": "rabbitmq"}})
    config = dataclasses.replace(config, functions={"echo": FunctionConfig(name="echo", source=Path("."), handler="index.handler")})
    settings = {"url": BROKER_URL, "queue_prefix": queue_prefix}
    payload = b"invocation " + uuid.uuid4().bytes

    async def scenario() -> None:
        client = RabbitMQTransport(settings, config)
        first = RabbitMQTransport(settings, config)
        second = RabbitMQTransport(settings, config)
        try:
            await client.start_client(lambda result: None, lambda reason: None)
            await first.start_server(["echo"])
            await second.start_server(["echo"])
            await client.publish("echo", payload, request_id="lost-connection", deadline=time.time() + 30)
            [delivery] = await asyncio.wait_for(first.receive("echo", 1), 10)

            # Closing the connection makes the broker requeue what it delivered there unacknowledged.
            first._server.connection.connection.close()
            with pytest.raises(TransportUnavailable, match="was not started because the connection it arrived on was lost"):
                await delivery.started()
            [again] = await asyncio.wait_for(second.receive("echo", 1), 10)
            assert again.payload == payload
            await again.started()
            await again.finished()
        finally:
            for transport in (client, first, second):
                await transport.close()

    asyncio.run(scenario())


# TLS.


def make_certificates(directory: Path) -> dict[str, Path]:
    """Create a CA, a server certificate for 127.0.0.1 and a client certificate with the openssl command."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory, timeout=60)

    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *new_key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=boothby test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for name, extensions in (("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
                             ("client", "extendedKeyUsage=clientAuth\n")):
        (directory / f"{name}.ext").write_text("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n" + extensions)
        openssl("req", *new_key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN=boothby test {name}")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext")
    return {name: directory / name for name in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


class TlsProxy:
    """A TLS listener on 127.0.0.1 that requires a client certificate and forwards each connection to the broker."""

    def __init__(self, certificates: dict[str, Path]) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(certificates["ca.pem"]))
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.context.load_cert_chain(str(certificates["server.pem"]), str(certificates["server.key"]))
        self.port = 0
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tls-proxy", daemon=True)

    def start(self) -> None:
        self._thread.start()
        server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._forward, "127.0.0.1", 0, ssl=self.context), self._loop).result(10)
        self.port = server.sockets[0].getsockname()[1]

    async def _forward(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        broker_reader, broker_writer = await asyncio.open_connection("127.0.0.1", 5672)

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, ssl.SSLError):
                pass
            finally:
                writer.close()

        await asyncio.gather(pipe(client_reader, broker_writer), pipe(broker_reader, client_writer))

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def test_tls_with_client_certificate(cluster, queue_prefix, tmp_path):
    certificates = make_certificates(tmp_path)
    proxy = TlsProxy(certificates)
    proxy.start()
    try:
        section = rabbitmq_section(
            queue_prefix, url=f"amqps://guest:guest@127.0.0.1:{proxy.port}/%2F", ca_file=str(certificates["ca.pem"]),
            cert_file=str(certificates["client.pem"]), key_file=str(certificates["client.key"]),
        )
        cluster.configure({"echo": ECHO}, transport="rabbitmq", sections=section)
        cluster.start("deflector")
        cluster.start("grappler")

        response = get(cluster.base_url, "?tag=tls")

        assert response.status_code == 200, response.text
        assert response.json()["tag"] == "tls"
        assert proxy.connections == 2, "the grappler and the deflector should each connect through the TLS proxy"
    finally:
        cluster.stop()
        proxy.stop()


# Configuration.


def test_invalid_settings_listed(tmp_path):
    settings = {
        "url": "http://127.0.0.1:5672/",
        "heartbeat": -5,
        "queue_prefix": "amq.mine",
        "ca_file": "ca.pem",
        "password_env": "BOOTHBY_TEST_UNSET_VARIABLE",
        "exchange": "x",
    }
    config = build_config({"boothby": {"transport": "rabbitmq"}}, tmp_path / "boothby.toml")

    with pytest.raises(ConfigError) as raised:
        parse_settings(settings, config, environ={})

    problems = "\n".join(raised.value.problems)
    assert "unknown key transport.rabbitmq.exchange" in problems
    assert "transport.rabbitmq.url = 'http://127.0.0.1:5672/' is invalid: the scheme must be amqp:// or amqps://" in problems
    assert "transport.rabbitmq.heartbeat = -5 is invalid" in problems
    assert "transport.rabbitmq.queue_prefix = 'amq.mine' is invalid" in problems
    assert "transport.rabbitmq.password_env = 'BOOTHBY_TEST_UNSET_VARIABLE' names an environment variable that is not set" in problems
    assert "transport.rabbitmq.ca_file is set, but url does not start with amqps://" in problems
    assert len(raised.value.problems) == 6, problems


@pytest.mark.parametrize(("settings", "message"), [
    ({"ca_file": "missing.pem", "url": "amqps://guest:guest@127.0.0.1:5671/%2F"},
     "transport.rabbitmq.ca_file = 'missing.pem' is invalid"),
    ({"ca_file": "not-pem.txt"}, "ca_file is set, but url does not start with amqps://"),
    ({"ca_file": "not-pem.txt", "url": "amqps://guest:guest@127.0.0.1:5671/%2F"},
     "the TLS files of [transport.rabbitmq] (ca_file, cert_file, key_file) cannot be loaded"),
    ({"heartbeat": "1.5s"}, "transport.rabbitmq.heartbeat = '1.5s' is invalid"),
    ({"heartbeat": True}, "transport.rabbitmq.heartbeat = True is invalid"),
    ({"url": "amqp://:5672/"}, "the host is missing"),
    ({"username_env": "not a name"}, "transport.rabbitmq.username_env = 'not a name' is invalid"),
    ({"queue_prefix": ""}, "transport.rabbitmq.queue_prefix = '' is invalid"),
])
def test_invalid_setting_rejected(tmp_path, settings, message):
    (tmp_path / "not-pem.txt").write_text("not a certificate\n")
    config = build_config({"boothby": {"transport": "rabbitmq"}}, tmp_path / "boothby.toml")

    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_settings(settings, config, environ={})


def test_valid_settings_accepted(tmp_path):
    (tmp_path / "ca.pem").write_text(Path("/etc/ssl/certs/ca-certificates.crt").read_text())
    config = build_config({"boothby": {"transport": "rabbitmq"}}, tmp_path / "boothby.toml")
    settings = {
        "url": "amqps://someone:secret@127.0.0.1:5671/production",
        "ca_file": "ca.pem",
        "heartbeat": "30s",
        "username_env": "RABBIT_USER",
        "password_env": "RABBIT_PASSWORD",
        "queue_prefix": "team-a.boothby",
    }

    parsed = parse_settings(settings, config, environ={"RABBIT_USER": "app", "RABBIT_PASSWORD": "from-env"})
    parameters = parsed.connection_parameters("test")

    assert parsed.ca_file == tmp_path / "ca.pem"
    assert parsed.heartbeat == 30
    assert parameters.heartbeat == 30
    assert parameters.ssl_options is not None
    assert parameters.credentials.username == "app"
    assert parameters.credentials.password == "from-env"
    assert parameters.virtual_host == "production"
    assert parsed.safe_url == "amqps://someone:***@127.0.0.1:5671/production"
    assert redact_url("amqp://127.0.0.1:5672/%2F") == "amqp://127.0.0.1:5672/%2F"


def test_unknown_key_stops_deflector(cluster, queue_prefix):
    cluster.configure({"echo": ECHO}, transport="rabbitmq", sections=rabbitmq_section(queue_prefix, prefetch=10))
    deflector = cluster.start("deflector", wait=False)

    assert deflector.process.wait(30) != 0
    assert "unknown key transport.rabbitmq.prefetch; allowed keys in [transport.rabbitmq]:" in deflector.log()


# Packaging.


def test_wheels_list_rabbitmq_transport(tmp_path):
    wheels = build_wheels(["boothby-core", "boothby-rabbitmq"], tmp_path / "dist")
    bin_dir = clean_venv(tmp_path / "venv", wheels)

    listed = subprocess.run([str(bin_dir / "boothby"), "plugins", "--json"], check=True, capture_output=True,
                            text=True, timeout=120)

    plugins = json.loads(listed.stdout)
    transports = {plugin["name"]: plugin for plugin in plugins["plugins"] if plugin["kind"] == "transport"}
    assert "rabbitmq" in transports, listed.stdout
    assert transports["rabbitmq"]["distribution"] == "boothby-rabbitmq"
    assert plugins["failures"] == []
