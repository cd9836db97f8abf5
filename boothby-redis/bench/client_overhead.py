"""Measure the CPU time and wall time of one Redis command through different client layers.

The command is a 300-byte PUBLISH to a channel without subscribers, or an XACK plus an XDEL
in the pipeline row. The layers are redis-py's client call, a redis-py pipeline, a bare
redis-py connection, the transport's CommandChannel, and asyncio streams with the hiredis
reader and no redis-py at all. Commands run one at a time, with uvloop.

Usage: python bench/client_overhead.py [--count N] [--url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time

import hiredis
import redis.asyncio as aioredis
import uvloop

from boothby_redis.channel import CommandChannel

MESSAGE = b"x" * 300
CHANNEL = "boothby-bench:no-subscribers"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def timed(label: str, count: int, call) -> None:
    cpu_before = cpu_seconds()
    wall_before = time.perf_counter()
    for _ in range(count):
        await call()
    cpu = (cpu_seconds() - cpu_before) / count
    wall = (time.perf_counter() - wall_before) / count
    print(f"{label:34} cpu={cpu * 1e6:5.1f}us wall={wall * 1e6:6.1f}us")


async def main(url: str, count: int) -> None:
    pool = aioredis.ConnectionPool.from_url(url, protocol=2)
    client = aioredis.Redis(connection_pool=pool)
    await client.ping()

    await timed("redis-py client publish", count, lambda: client.publish(CHANNEL, MESSAGE))

    async def pipeline() -> None:
        async with client.pipeline(transaction=False) as commands:
            commands.xack("boothby-bench:stream", "group", "1-1")
            commands.xdel("boothby-bench:stream", "1-1")
            await commands.execute()

    await timed("redis-py pipeline xack + xdel", count, pipeline)

    connection = pool.make_connection()
    await connection.connect()

    async def bare() -> None:
        await connection.send_packed_command(connection.pack_command("PUBLISH", CHANNEL, MESSAGE), check_health=False)
        await connection.read_response()

    await timed("bare redis-py connection publish", count, bare)
    await connection.disconnect()

    channel = CommandChannel(client, 5.0, "benchmark")
    await timed("CommandChannel publish", count, lambda: channel.execute("PUBLISH", CHANNEL, MESSAGE))
    await channel.close()

    host, port = pool.connection_kwargs["host"], pool.connection_kwargs["port"]
    stream_reader, stream_writer = await asyncio.open_connection(host, port)
    parser = hiredis.Reader()
    packed = b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(CHANNEL), CHANNEL.encode(), len(MESSAGE), MESSAGE)

    async def plain() -> None:
        stream_writer.write(packed)
        while (reply := parser.gets()) is False:
            parser.feed(await stream_reader.read(65536))
        assert reply == 0

    await timed("asyncio streams + hiredis publish", count, plain)
    stream_writer.close()
    await client.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--count", type=int, default=5000)
    arguments = parser.parse_args()
    uvloop.run(main(arguments.url, arguments.count))
