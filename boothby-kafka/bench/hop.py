"""Measure one Kafka request/reply round trip with aiokafka, with and without a commit before the reply.

One task plays the deflector: it consumes a request topic in a consumer group, optionally
commits the record's offset and waits for the commit, then produces the record's value to a
reply topic. The main task plays the grappler: it produces a request, waits for its
acknowledgement, then waits for the reply on a consumer assigned to the reply topic. Both run
in this process on one event loop, so the numbers leave out HTTP, Avro and the worker.

    .venv/bin/python boothby-kafka/bench/hop.py --count 1000 --rounds 3

Uses the broker on 127.0.0.1:9092 only, with topics of its own that it deletes at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

BOOTSTRAP = "127.0.0.1:9092"


async def serve(consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, reply_topic: str, commit: bool) -> None:
    while True:
        batches = await consumer.getmany(timeout_ms=1000, max_records=1)
        for partition, records in batches.items():
            for record in records:
                if commit:
                    await consumer.commit({partition: record.offset + 1})
                await producer.send_and_wait(reply_topic, record.value)


async def measure(count: int, commit: bool, fetch_max_wait_ms: int) -> list[float]:
    """Return the latencies, in milliseconds, of ``count`` request/reply round trips."""
    prefix = f"bench-hop-{uuid.uuid4().hex[:8]}"
    request_topic, reply_topic = f"{prefix}.requests", f"{prefix}.replies"

    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    await admin.create_topics([NewTopic(request_topic, 4, 1), NewTopic(reply_topic, 1, 1)])

    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=0, acks="all", enable_idempotence=True)
    server = AIOKafkaConsumer(request_topic, bootstrap_servers=BOOTSTRAP, group_id=prefix, enable_auto_commit=False,
                              auto_offset_reset="earliest", fetch_max_wait_ms=fetch_max_wait_ms)
    replies = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, auto_offset_reset="earliest",
                               fetch_max_wait_ms=fetch_max_wait_ms)
    await producer.start()
    await server.start()
    await replies.start()
    replies.assign([TopicPartition(reply_topic, 0)])
    while not server.assignment():
        await server.getmany(timeout_ms=100)

    serving = asyncio.create_task(serve(server, producer, reply_topic, commit))
    try:
        latencies = []
        for _ in range(count):
            started = time.perf_counter()
            await producer.send_and_wait(request_topic, b"x" * 300)
            while not await replies.getmany(timeout_ms=1000):
                pass
            latencies.append((time.perf_counter() - started) * 1000)
        return latencies
    finally:
        serving.cancel()
        for client in (server, replies, producer):
            await client.stop()
        await admin.delete_topics([request_topic, reply_topic])
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="round trips per mode and round")
    parser.add_argument("--rounds", type=int, default=3, help="times each mode is measured, in turn")
    parser.add_argument("--fetch-max-wait-ms", type=int, default=100, help="fetch_max_wait_ms of both consumers")
    args = parser.parse_args()

    results: dict[str, list[float]] = {"no commit": [], "commit before reply": []}
    for round_number in range(1, args.rounds + 1):
        for mode in results:
            latencies = asyncio.run(measure(args.count, mode != "no commit", args.fetch_max_wait_ms))
            cuts = statistics.quantiles(latencies[50:], n=100)
            results[mode].append(cuts[49])
            print(f"round {round_number} {mode}: p50 {cuts[49]:.2f} p90 {cuts[89]:.2f} p99 {cuts[98]:.2f} ms",
                  flush=True)
    for mode, medians in results.items():
        print(f"{mode}: median p50 of {args.rounds} rounds {statistics.median(medians):.2f} ms")


if __name__ == "__main__":
    main()
