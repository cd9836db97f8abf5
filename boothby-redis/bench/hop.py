"""Measure one request/reply hop through Redis between two Python processes, for several designs.

A client process queues a small message and waits for the reply. A server process, started
as a child, reads the message and replies. Each variant names the queue, the acknowledgement
and the reply channel:

    stream-ack-pubsub   XADD / XREADGROUP, ownership-checked ack script awaited before replying, PUBLISH
    stream-pubsub       the same without the ack (the lower bound for streams)
    xadd-pubsub         like stream-pubsub, but a plain XADD instead of the PUBLISH script (no queue limit)
    stream-ack-list     ack as above, but the reply goes through LPUSH / BLPOP
    stream-ack-stream   ack as above, but the reply goes through XADD / XREAD on a per-client stream
    list-pubsub         LPUSH / BRPOPLPUSH into a processing list, LREM as ack, PUBLISH

Usage: python bench/hop.py [--count N] [--parser hiredis|python] [--variant NAME ...]
It connects only to the Redis URL given with --url (default redis://127.0.0.1:6379/0) and uses
a random key prefix whose keys it deletes at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import secrets
import statistics
import time

import redis.asyncio as aioredis
from redis._parsers import _AsyncHiredisParser, _AsyncRESP2Parser

from boothby_redis import scripts

VARIANTS = ("stream-ack-pubsub", "stream-pubsub", "xadd-pubsub", "stream-ack-list", "stream-ack-stream", "list-pubsub")
PARSERS = {"hiredis": _AsyncHiredisParser, "python": _AsyncRESP2Parser}
PAYLOAD = b"\xc3\x01" + bytes(8) + b"x" * 400


def client_for(url: str, parser: str) -> aioredis.Redis:
    pool = aioredis.ConnectionPool.from_url(url, parser_class=PARSERS[parser], protocol=2, socket_timeout=None)
    return aioredis.Redis(connection_pool=pool)


async def serve(url: str, parser: str, variant: str, prefix: str, ready: multiprocessing.Event) -> None:
    client = client_for(url, parser)
    blocking = client_for(url, parser)
    stream, queue, processing = f"{prefix}:stream", f"{prefix}:list", f"{prefix}:processing"
    await client.xgroup_create(stream, "g", id="0", mkstream=True)
    start = client.register_script(scripts.START)
    ready.set()
    while True:
        if variant == "list-pubsub":
            payload = await blocking.brpoplpush(queue, processing, timeout=0)
            await client.lrem(processing, 1, payload)
            fields = {b"p": payload}
        else:
            response = await blocking.xreadgroup("g", "server", {stream: ">"}, count=1, block=0)
            entry_id, fields = response[0][1][0]
            if "ack" in variant:
                await start(keys=[stream], args=["g", "server", entry_id])
        if fields[b"p"] == b"stop":
            return
        reply = fields[b"p"][:16]
        if variant.endswith("pubsub"):
            await client.publish(f"{prefix}:replies", reply)
        elif variant.endswith("list"):
            await client.lpush(f"{prefix}:replies", reply)
        else:
            await client.xadd(f"{prefix}:replies", {"p": reply}, maxlen=1000, approximate=True)


def serve_process(url: str, parser: str, variant: str, prefix: str, ready: multiprocessing.Event) -> None:
    import uvloop

    uvloop.run(serve(url, parser, variant, prefix, ready))


async def measure(url: str, parser: str, variant: str, count: int) -> list[float]:
    prefix = f"boothby-bench-{secrets.token_hex(4)}"
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    server = context.Process(target=serve_process, args=(url, parser, variant, prefix, ready))
    server.start()
    client = client_for(url, parser)
    blocking = client_for(url, parser)
    publish = client.register_script(scripts.PUBLISH)
    stream, queue, replies = f"{prefix}:stream", f"{prefix}:list", f"{prefix}:replies"
    subscriber = client.connection_pool.make_connection()
    await subscriber.connect()
    await subscriber.send_command("SUBSCRIBE", replies)
    await subscriber.read_response()
    while not ready.is_set():
        await asyncio.sleep(0.01)

    async def send(payload: bytes) -> None:
        if variant == "list-pubsub":
            await client.lpush(queue, payload)
        elif variant == "xadd-pubsub":
            await client.xadd(stream, {"d": 0, "i": "bench", "p": payload})
        else:
            await publish(keys=[stream], args=[10000, 60000, 0, "bench", payload])

    last_id = "$"
    samples = []
    for index in range(count + 200):
        began = time.perf_counter()
        await send(PAYLOAD)
        if variant.endswith("pubsub"):
            await subscriber.read_response()
        elif variant.endswith("list"):
            await blocking.blpop(replies, timeout=0)
        else:
            response = await blocking.xread({replies: last_id}, count=1, block=0)
            last_id = response[0][1][0][0]
        if index >= 200:
            samples.append(time.perf_counter() - began)
    await send(b"stop")
    server.join(10)
    await client.delete(stream, queue, replies, f"{prefix}:processing")
    await subscriber.disconnect()
    await client.aclose()
    await blocking.aclose()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--count", type=int, default=3000, help="measured round trips per variant (after 200 warm-up ones)")
    parser.add_argument("--parser", choices=sorted(PARSERS), action="append", help="repeatable; default both")
    parser.add_argument("--variant", choices=VARIANTS, action="append", help="repeatable; default all")
    args = parser.parse_args()
    import uvloop

    for variant in args.variant or VARIANTS:
        for parser_name in args.parser or sorted(PARSERS):
            samples = uvloop.run(measure(args.url, parser_name, variant, args.count))
            samples.sort()
            print(f"{variant:18} {parser_name:8} n={len(samples)} p50={samples[len(samples) // 2] * 1e6:6.0f}us "
                  f"p90={samples[int(len(samples) * 0.9)] * 1e6:6.0f}us mean={statistics.fmean(samples) * 1e6:6.0f}us")


if __name__ == "__main__":
    main()
