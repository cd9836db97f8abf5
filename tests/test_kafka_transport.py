"""The kafka transport against the broker of scripts/brokers/kafka.sh, with grappler and deflectors as processes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Awaitable, Callable

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition
from boothby.config import build_config
from boothby.errors import ConfigError

from boothby_kafka.offsets import OffsetTracker, State
from boothby_kafka.transport import KafkaTransport

from .helpers import ROOT
from .packaging import build_wheels, clean_venv

pytestmark = pytest.mark.kafka

BOOTSTRAP = "127.0.0.1:9092"
KAFKA_SH = ROOT / "scripts" / "brokers" / "kafka.sh"
WORK = {"source": "kafka_work"}

# Consumers in these tests notice a dead group member after 6 s, the broker's default minimum.
FAST_GROUP = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}


# Broker helpers, shared with test_kafka_log_sink.py.


async def with_admin(operation: Callable[[AIOKafkaAdminClient], Awaitable[Any]]) -> Any:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP, request_timeout_ms=10_000)
    await admin.start()
    try:
        return await asyncio.wait_for(operation(admin), 20)
    finally:
        await admin.close()


def wait_for_kafka(timeout: float = 60.0) -> None:
    """Fail the test unless the broker responds to a metadata request within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            asyncio.run(with_admin(lambda admin: admin.describe_topics([])))
            return
        except (KafkaError, OSError, asyncio.TimeoutError) as error:
            last_error = error
            time.sleep(0.5)
    pytest.fail(f"Kafka is not reachable at {BOOTSTRAP} after {timeout:g}s ({last_error}); "
                "start it with scripts/brokers/kafka.sh start")


def topics_with_prefix(prefix: str) -> list[str]:
    topics = asyncio.run(with_admin(lambda admin: admin.list_topics()))
    return sorted(topic for topic in topics if topic.startswith(prefix))


def delete_topics_with_prefix(prefix: str) -> None:
    topics = topics_with_prefix(prefix)
    if topics:
        asyncio.run(with_admin(lambda admin: admin.delete_topics(topics)))


def kafka_sh(command: str, timeout: float = 150.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(KAFKA_SH), command], capture_output=True, text=True, timeout=timeout)


def ensure_broker_running() -> None:
    """Start the broker when it is not running, so that a failed test leaves it as it found it."""
    if kafka_sh("status", timeout=30).returncode != 0:
        started = kafka_sh("start")
        assert started.returncode == 0, f"kafka.sh start failed:\n{started.stdout}\n{started.stderr}"


@pytest.fixture
def kafka_prefix(cluster):
    """A topic prefix no other test uses; its topics are deleted afterwards."""
    wait_for_kafka()
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    yield prefix
    # Stop the processes first: a consumer still subscribed would make the broker create the
    # deleted topics again (auto.create.topics.enable).
    cluster.stop()
    try:
        delete_topics_with_prefix(prefix)
    except (KafkaError, OSError, asyncio.TimeoutError):
        pass  # the broker may be down after a failed outage test; the topics are unique and harmless


def configure(cluster, prefix: str, functions: dict[str, dict[str, Any]] | None = None,
              transport: dict[str, Any] | None = None, **sections: dict[str, Any]) -> None:
    all_sections = {"transport.kafka": {"topic_prefix": prefix, "partitions": 4, **(transport or {})}}
    all_sections.update({name.replace("__", "."): values for name, values in sections.items()})
    cluster.configure(functions or {"work": WORK}, transport="kafka", sections=all_sections)


def assignments(process) -> list[list[int]]:
    """Return every partition assignment a deflector logged, oldest first."""
    return [json.loads(found) for found in re.findall(r"assigned partitions (\[[\d, ]*\])", process.log())]


def wait_until(condition: Callable[[], bool], timeout: float, message: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(message())


# Settings and bookkeeping, without processes.


def test_settings_reject_unknown_and_invalid_keys(tmp_path):
    config = build_config({"functions": {"work": {"source": str(ROOT / "tests" / "functions" / "kafka_work"),
                                                   "handler": "index.handler"}}}, tmp_path / "boothby.toml")
    settings = {"bootstrap_servers": "localhost", "partitions": 0, "acks": 2, "topic_prefix": "bad prefix",
                "security_protocol": "SASL_SSL", "linger": 5}
    with pytest.raises(ConfigError) as raised:
        KafkaTransport(settings, config)
    problems = "\n".join(raised.value.problems)
    assert "unknown key transport.kafka.linger" in problems
    assert "transport.kafka.bootstrap_servers = 'localhost' is invalid" in problems
    assert "transport.kafka.partitions = 0 is invalid: expected a whole number between 1 and 10000" in problems
    assert "transport.kafka.acks = 2 is invalid" in problems
    assert "transport.kafka.topic_prefix = 'bad prefix' is invalid" in problems
    assert "needs transport.kafka.sasl_plain_username and transport.kafka.sasl_password_env" in problems


def test_settings_need_password_variable_set(tmp_path, monkeypatch):
    config = build_config({}, tmp_path / "boothby.toml")
    monkeypatch.delenv("BOOTHBY_TEST_KAFKA_PASSWORD", raising=False)
    settings = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
                "sasl_plain_username": "boothby", "sasl_password_env": "BOOTHBY_TEST_KAFKA_PASSWORD"}
    missing = "names the environment variable BOOTHBY_TEST_KAFKA_PASSWORD, which is not set"
    with pytest.raises(ConfigError, match=missing):
        KafkaTransport(settings, config)

    monkeypatch.setenv("BOOTHBY_TEST_KAFKA_PASSWORD", "s3cret")
    options = KafkaTransport(settings, config).options.connection.client_options()
    assert options["sasl_plain_password"] == "s3cret"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"


def test_offsets_commit_stops_at_first_pending():
    partition = TopicPartition("requests", 0)
    tracker = OffsetTracker()
    tracker.assign({partition})
    first, second, third = (tracker.fetched(partition, offset) for offset in (10, 11, 12))
    assert tracker.targets() == {partition: 10}

    tracker.mark(second, State.STARTED)
    assert tracker.targets() == {partition: 10}, "a started record must not carry the commit past a pending one"

    tracker.mark(first, State.STARTED)
    assert tracker.targets() == {partition: 12}
    tracker.confirm({partition: 12}, tracker.epochs())
    assert tracker.covered(first)
    assert tracker.covered(second)
    assert not tracker.covered(third)

    tracker.mark(third, State.DONE)
    assert tracker.targets() == {partition: 13}


def test_offsets_tickets_go_stale_on_revoke_and_rewind():
    partition = TopicPartition("requests", 1)
    tracker = OffsetTracker()
    tracker.assign({partition})
    started = tracker.fetched(partition, 5)
    tracker.mark(started, State.STARTED)
    tracker.confirm({partition: 6}, tracker.epochs())
    waiting = tracker.fetched(partition, 6)

    assert tracker.rewind(partition) == 6
    assert tracker.state(waiting) is None, "a record fetched before a rewind must not start"
    assert tracker.targets() == {}

    again = tracker.fetched(partition, 6)
    tracker.revoke({partition})
    assert not tracker.mark(again, State.STARTED)
    assert tracker.fetched(partition, 7) is None


def test_offsets_commit_before_revoke_still_covers():
    partition = TopicPartition("requests", 2)
    tracker = OffsetTracker()
    tracker.assign({partition})
    started = tracker.fetched(partition, 0)
    waiting = tracker.fetched(partition, 1)
    tracker.mark(started, State.STARTED)

    epochs = tracker.epochs()
    final_commit = tracker.targets()
    tracker.confirm(final_commit, epochs)
    tracker.revoke({partition})

    assert final_commit == {partition: 1}
    assert tracker.covered(started), "an invocation the last commit included must still run after the revoke"
    assert not tracker.covered(waiting)
    assert tracker.state(waiting) is None


# One process against the broker.


def test_receive_respects_max_count_and_release(kafka_prefix, tmp_path):
    config = build_config({"functions": {"work": {"source": str(ROOT / "tests" / "functions" / "kafka_work"),
                                                   "handler": "index.handler"}}}, tmp_path / "boothby.toml")
    settings = {"topic_prefix": kafka_prefix, "partitions": 2}
    payloads = [f"invocation {index}".encode() for index in range(5)]

    async def scenario() -> tuple[list[int], list[bytes], list[bytes], list[bytes]]:
        client = KafkaTransport(settings, config)
        first = KafkaTransport(settings, config)
        await client.start_client(lambda payload: None, lambda reason: None)
        await first.start_server(["work"])
        for index, payload in enumerate(payloads):
            await client.publish("work", payload, request_id=f"request-{index}", deadline=time.time() + 30)

        sizes = []
        received = []
        for _ in range(20):
            deliveries = await asyncio.wait_for(first.receive("work", 2), 15)
            sizes.append(len(deliveries))
            received += deliveries
            if len(received) >= len(payloads):
                break
        released = received[-1]
        for delivery in received[:-1]:
            await delivery.started()
            await delivery.finished()
        await released.release()
        await first.close()

        second = KafkaTransport(settings, config)
        await second.start_server(["work"])
        again = await asyncio.wait_for(second.receive("work", 5), 30)
        for delivery in again:
            await delivery.started()
            await delivery.finished()
        try:
            extra = await asyncio.wait_for(second.receive("work", 5), 2)
        except asyncio.TimeoutError:
            extra = []
        await second.close()
        await client.close()
        return sizes, [bytes(delivery.payload) for delivery in received], [bytes(released.payload)], \
            [bytes(delivery.payload) for delivery in again + extra]

    sizes, received, released, again = asyncio.run(scenario())
    assert all(1 <= size <= 2 for size in sizes), f"receive(max_count=2) returned batches of {sizes}"
    assert sorted(received) == sorted(payloads)
    assert again == released, "only the released invocation goes to the next deflector"


# Processes against the broker.


def test_request_served_end_to_end(cluster, kafka_prefix):
    configure(cluster, kafka_prefix, {"work": WORK, "echo": {"source": "echo"}})
    deflector = cluster.start("deflector")
    grappler = cluster.start("grappler")

    with httpx.Client(base_url=cluster.base_url, timeout=30) as client:
        response = client.get("/work", params={"logs": 1})
        assert response.status_code == 200, response.text
        assert response.json()["requestId"] == response.headers["x-request-id"]
        assert response.json()["deflectorPid"] == deflector.pid

        body = os.urandom(1_500_000)
        echoed = client.post("/echo?raw=1", content=body, headers={"content-type": "application/octet-stream"})
        assert echoed.status_code == 200, echoed.text[:500]
        assert echoed.content == body, "a 1.5 MB body, above Kafka's default 1 MB message limit, must survive"

        health = client.get("/_boothby/health").json()
        assert health == {"status": "ok", "transport": "kafka", "pid": health["pid"]}

    topics = topics_with_prefix(kafka_prefix)
    assert f"{kafka_prefix}.requests.work" in topics
    assert f"{kafka_prefix}.requests.echo" in topics
    [reply_topic] = [topic for topic in topics if topic.startswith(f"{kafka_prefix}.replies.")]

    grappler.stop()
    assert reply_topic not in topics_with_prefix(kafka_prefix), "a grappler deletes its reply topic when it stops"


def test_two_deflectors_share_partitions(cluster, kafka_prefix):
    configure(cluster, kafka_prefix, {"work": {**WORK, "concurrency": 4}}, transport=FAST_GROUP)
    first = cluster.start("deflector")
    second = cluster.start("deflector")
    cluster.start("grappler")
    wait_until(lambda: len(assignments(second)) >= 1 and len(assignments(first)) >= 2, 30,
               lambda: f"the two deflectors did not rebalance:\n{first.log()[-3000:]}\n{second.log()[-3000:]}")
    first_partitions, second_partitions = assignments(first)[-1], assignments(second)[-1]
    assert sorted(first_partitions + second_partitions) == [0, 1, 2, 3]
    assert first_partitions and second_partitions

    with httpx.Client(base_url=cluster.base_url, timeout=30) as client, ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda _: client.get("/work", params={"sleep": 50}), range(48)))
    assert [response.status_code for response in responses] == [200] * 48
    served_by = {response.json()["deflectorPid"] for response in responses}
    assert served_by == {first.pid, second.pid}


def test_killed_deflector_invocations_move(cluster, kafka_prefix):
    configure(cluster, kafka_prefix, {"work": {**WORK, "concurrency": 4, "timeout": "14s"}}, transport=FAST_GROUP)
    doomed = cluster.start("deflector")
    survivor = cluster.start("deflector")
    grappler = cluster.start("grappler")
    wait_until(lambda: len(assignments(survivor)) >= 1 and len(assignments(doomed)) >= 2, 30,
               lambda: f"the two deflectors did not rebalance:\n{doomed.log()[-3000:]}")

    results: list[tuple[int, dict[str, Any]]] = []

    def call(_: int) -> None:
        response = client.get("/work", params={"sleep": 1000})
        results.append((response.status_code, response.json()))

    with httpx.Client(base_url=cluster.base_url, timeout=30) as client, ThreadPoolExecutor(24) as pool:
        futures = [pool.submit(call, index) for index in range(24)]
        time.sleep(0.5)
        killed_at = time.time() * 1000
        doomed.signal(signal.SIGKILL)
        for future in futures:
            future.result(timeout=40)

    statuses = [status for status, _ in results]
    served = [body for status, body in results if status == 200]
    lost = [body for status, body in results if status != 200]
    assert len(results) == 24
    assert set(statuses) <= {200, 504}, statuses
    assert lost, "the invocations the killed deflector had started must not run again elsewhere"
    assert len(lost) <= 4, f"only the 4 invocations the killed deflector was running may be lost: {lost}"
    assert all(body["error"] == "timeout" for body in lost)
    assert "arrived after the request ended" not in grappler.log(), "no invocation may run twice"
    moved = [body for body in served if body["deflectorPid"] == survivor.pid and body["startedMs"] > killed_at + 3000]
    assert moved, "invocations waiting on the killed deflector's partitions must run on the survivor"
    assert any(len(found) == 4 for found in assignments(survivor)), "the survivor takes over every partition"


def test_late_reply_dropped_and_counted(cluster, kafka_prefix):
    configure(cluster, kafka_prefix, {"work": {**WORK, "timeout": "3s", "concurrency": 4}})
    deflector = cluster.start("deflector")
    grappler = cluster.start("grappler")

    with httpx.Client(base_url=cluster.base_url, timeout=30) as client, ThreadPoolExecutor(1) as pool:
        late = pool.submit(client.get, "/work", params={"sleep": 1000})
        time.sleep(0.5)
        deflector.signal(signal.SIGSTOP)
        try:
            timed_out = late.result(timeout=10)
        finally:
            deflector.signal(signal.SIGCONT)
        request_id = timed_out.headers["x-request-id"]
        assert timed_out.status_code == 504

        grappler.wait_for_log(f"reply for request {request_id} arrived after the request ended; dropped "
                              "(1 late replies so far)", timeout=15)
        others = [client.get("/work") for _ in range(5)]
    assert [response.status_code for response in others] == [200] * 5
    assert all(response.json()["requestId"] == response.headers["x-request-id"] for response in others)


def test_poll_interval_shorter_than_timeout_rejected(cluster, kafka_prefix):
    configure(cluster, kafka_prefix, {"work": {**WORK, "timeout": "10m"}}, transport={"max_poll_interval_ms": 60000})
    deflector = cluster.start("deflector", wait=False)
    assert deflector.process.wait(30) != 0
    log = deflector.log()
    assert "transport.kafka.max_poll_interval_ms = 60000 is shorter than the longest function timeout of 600s" in log
    assert "Set max_poll_interval_ms to at least 610000" in log


def test_unreachable_broker_fails_fast(cluster, kafka_prefix, unused_port):
    configure(cluster, kafka_prefix, transport={"bootstrap_servers": f"127.0.0.1:{unused_port}"})
    grappler = cluster.start("grappler", wait=False)
    grappler.wait_for_log("connecting in the background", timeout=30)
    with httpx.Client(base_url=cluster.base_url, timeout=30) as client:
        wait_until(lambda: _answers(client), 30, lambda: grappler.log()[-3000:])
        started = time.monotonic()
        response = client.get("/work")
        elapsed = time.monotonic() - started
        health = client.get("/_boothby/health")
    assert response.status_code == 503
    assert f"not connected to Kafka at 127.0.0.1:{unused_port} yet" in response.json()["message"]
    assert elapsed < 1.0, f"a call with no broker must fail at once, took {elapsed:.2f}s"
    assert health.status_code == 503
    grappler.wait_for_log("connect attempt 2", timeout=30)


@pytest.fixture
def unused_port():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(client: httpx.Client) -> bool:
    try:
        client.get("/_boothby/health")
        return True
    except httpx.HTTPError:
        return False


def test_idle_reply_topics_swept(cluster, kafka_prefix):
    stale = f"{kafka_prefix}.replies.gone-host.4242.{int(time.time()) - 3600}.abcdef"
    asyncio.run(with_admin(lambda admin: admin.create_topics([NewTopic(stale, 1, 1)])))
    configure(cluster, kafka_prefix, transport={"reply_sweep_interval_ms": 1000})
    cluster.start("grappler")
    wait_until(lambda: stale not in topics_with_prefix(kafka_prefix), 20,
               lambda: f"{stale} was not swept: {topics_with_prefix(kafka_prefix)}\n{cluster.logs()[-3000:]}")
    assert any(".replies." in topic for topic in topics_with_prefix(kafka_prefix)), "the live grappler keeps its topic"


def test_broker_restart_mid_traffic(cluster, kafka_prefix):
    configure(cluster, kafka_prefix, {"work": {**WORK, "timeout": "10s", "concurrency": 4}})
    deflector = cluster.start("deflector")
    grappler = cluster.start("grappler")
    results: list[tuple[float, float, int, str]] = []
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(base_url=cluster.base_url, timeout=30) as client:
            for _ in range(3000):
                if stop.is_set():
                    return
                started = time.monotonic()
                response = client.get("/work", params={"sleep": 100})
                results.append((started, time.monotonic(), response.status_code, response.text))
                if response.status_code != 200:
                    time.sleep(0.1)

    senders = [threading.Thread(target=traffic) for _ in range(3)]
    for sender in senders:
        sender.start()
    try:
        time.sleep(1.0)
        restart_started = time.monotonic()
        restarted = kafka_sh("restart")
        back_at = time.monotonic()
        assert restarted.returncode == 0, f"kafka.sh restart failed:\n{restarted.stdout}\n{restarted.stderr}"
        wait_until(lambda: _succeeding_since(results, back_at) >= 20, 60,
                   lambda: f"calls did not succeed again after the restart:\n{grappler.log()[-4000:]}")
    finally:
        stop.set()
        for sender in senders:
            sender.join(40)
        ensure_broker_running()

    failures = [(end - start, status, text) for start, end, status, text in results if status != 200]
    assert failures, "some calls must fail while the broker is down"
    for elapsed, status, text in failures:
        assert status in (502, 503), text
        assert "Kafka at 127.0.0.1:9092" in json.loads(text)["message"]
        assert elapsed < 8, f"a call waited {elapsed:.1f}s for a dead broker instead of failing fast: {text}"
    assert any(start > restart_started and status == 200 for start, _, status, _ in results)
    assert deflector.process.poll() is None, "the deflector keeps running through the outage"
    assert grappler.process.poll() is None, "the grappler keeps running through the outage"

    grappler_log = grappler.log()
    assert "lost the connection to 127.0.0.1:9092" in grappler_log
    assert re.search(r"reconnect attempt \d+ to 127.0.0.1:9092 failed", grappler_log)
    assert re.search(r"reconnected to 127.0.0.1:9092 after \d+ attempts", grappler_log)
    assert re.search(r"reconnected to 127.0.0.1:9092 after \d+ attempts", deflector.log())


def _succeeding_since(results: list[tuple[float, float, int, str]], since: float) -> int:
    return sum(1 for start, _, status, _ in results if start > since and status == 200)


def test_wheels_list_both_plugins(tmp_path: Path):
    wheels = build_wheels(["boothby-core", "boothby-kafka"], tmp_path / "dist")
    bin_dir = clean_venv(tmp_path / "venv", wheels)
    listed = subprocess.run([str(bin_dir / "boothby"), "plugins", "--json"], capture_output=True, text=True,
                            check=True, timeout=60)
    rows = {(plugin["kind"], plugin["name"]): plugin for plugin in json.loads(listed.stdout)["plugins"]}
    assert rows[("transport", "kafka")]["distribution"] == "boothby-kafka"
    assert rows[("log_sink", "kafka")]["distribution"] == "boothby-kafka"
    assert json.loads(listed.stdout)["failures"] == []

    table = subprocess.run([str(bin_dir / "boothby"), "plugins"], capture_output=True, text=True, check=True,
                           timeout=60).stdout
    assert re.search(r"^kafka\s+transport\s+boothby-kafka\s+0\.1\.0$", table, re.MULTILINE), table
    assert re.search(r"^kafka\s+log_sink\s+boothby-kafka\s+0\.1\.0$", table, re.MULTILINE), table
