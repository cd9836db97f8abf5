"""The kafka log sink against the broker of scripts/brokers/kafka.sh, with the embedded transport."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from boothby.codec import log_record_schema

from .test_kafka_transport import BOOTSTRAP, delete_topics_with_prefix, ensure_broker_running, kafka_sh, wait_for_kafka

pytestmark = pytest.mark.kafka

WORK = {"source": "kafka_work"}


def read_log_records(topic: str, expected: set[str], timeout: float = 30.0) -> list[tuple[bytes, dict[str, Any]]]:
    """Read ``topic`` from the start until the records of every request id in ``expected`` arrived.

    Returns what was read when ``timeout`` seconds pass first.
    """

    async def read() -> list[tuple[bytes, dict[str, Any]]]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=BOOTSTRAP, auto_offset_reset="earliest",
                                    enable_auto_commit=False, group_id=None)
        await consumer.start()
        schema = log_record_schema()
        found: list[tuple[bytes, dict[str, Any]]] = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    found += [(record.key, schema.decode(record.value)) for record in records]
                if expected <= {record["request_id"] for _, record in found}:
                    break
        finally:
            await consumer.stop()
        return found

    return asyncio.run(read())


@pytest.fixture
def log_topic(cluster):
    """A log topic no other test uses; it is deleted afterwards."""
    wait_for_kafka()
    topic = f"test-logs-{time.time_ns()}"
    yield topic
    cluster.stop()  # a producer still running could make the broker create the deleted topic again
    try:
        delete_topics_with_prefix(topic)
    except (KafkaError, OSError, asyncio.TimeoutError):
        pass  # the broker may be down after a failed outage test; the topic name is unique and harmless


def configure(cluster, topic: str, sink: dict[str, Any] | None = None, deflector: dict[str, Any] | None = None) -> None:
    sections = {"log_sink.kafka": {"bootstrap_servers": BOOTSTRAP, "topic": topic, **(sink or {})}}
    if deflector:
        sections["deflector"] = deflector
    cluster.configure({"work": WORK}, transport="embedded", log_sinks=("kafka",), sections=sections)


def test_log_records_arrive_with_request_ids(cluster, log_topic):
    configure(cluster, log_topic)
    cluster.start("up")
    with httpx.Client(base_url=cluster.base_url, timeout=30) as client:
        responses = [client.get("/", params={"logs": 2}) for _ in range(3)]
    assert [response.status_code for response in responses] == [200] * 3
    request_ids = [response.headers["x-request-id"] for response in responses]

    found = read_log_records(log_topic, set(request_ids))
    for request_id in request_ids:
        mine = [(key, record) for key, record in found if record["request_id"] == request_id]
        assert [record["message"] for _, record in mine] == [f"line {index} of {request_id}" for index in range(2)]
        assert all(key == b"work" for key, _ in mine), "records are keyed by function name"
        assert all(record["function"] == "work" for _, record in mine)
        assert all(record["level"] == "info" for _, record in mine)
        assert all(abs(record["timestamp_ms"] / 1000 - time.time()) < 120 for _, record in mine)


def test_kafka_outage_drops_logs_without_delaying_replies(cluster, log_topic):
    configure(cluster, log_topic, sink={"write_timeout_ms": 3000}, deflector={"log_buffer": 20})
    up = cluster.start("up")
    try:
        with httpx.Client(base_url=cluster.base_url, timeout=30) as client:
            before = client.get("/", params={"logs": 1})
            assert read_log_records(log_topic, {before.headers["x-request-id"]}), "shipping works before the outage"

            stopped = kafka_sh("stop")
            assert stopped.returncode == 0, f"kafka.sh stop failed:\n{stopped.stdout}\n{stopped.stderr}"
            durations = []
            for _ in range(40):
                started = time.monotonic()
                response = client.get("/", params={"logs": 3})
                durations.append(time.monotonic() - started)
                assert response.status_code == 200, response.text
            assert max(durations) < 1.0, f"replies waited for the dead log sink: slowest {max(durations):.2f}s"

            started = kafka_sh("start")
            assert started.returncode == 0, f"kafka.sh start failed:\n{started.stdout}\n{started.stderr}"
            # Right after the restart the buffer may still be full of outage records, so a record
            # can still be dropped then: keep sending, bounded, until one request's record arrives.
            sent: set[str] = set()
            shipped: set[str] = set()
            for _ in range(20):
                after = client.get("/", params={"logs": 1})
                sent.add(after.headers["x-request-id"])
                shipped = {record["request_id"] for _, record in read_log_records(log_topic, sent, timeout=3)}
                if sent & shipped:
                    break
            assert sent & shipped, "shipping resumes once Kafka is back"
    finally:
        ensure_broker_running()

    up.stop()
    log = up.log_path.read_text(errors="replace")
    counts = re.findall(r"log sink 'kafka': (\d+) records dropped because its buffer of 20 was full, "
                        r"(\d+) lost to write errors so far", log)
    assert counts, f"the deflector must report the dropped records:\n{log[-4000:]}"
    dropped, failed = map(int, counts[-1])
    assert dropped > 0
    assert dropped + failed <= 120
