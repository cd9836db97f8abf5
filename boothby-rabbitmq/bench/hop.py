"""Measure one RabbitMQ request/reply round trip with pika, for each I/O model and reply queue kind.

A child process echoes every message of a request queue to the message's ``reply_to``. This
process publishes requests one at a time and waits for each echo. Both processes use the same
I/O model:

- ``asyncio``: ``pika.adapters.asyncio_connection.AsyncioConnection`` on the process's event
  loop (uvloop when installed).
- ``bridged``: the same adapter with ``boothby_rabbitmq.streams.BridgedIOServices``, as the
  transport runs it. The stream runs on the event loop's own transport, with one write per
  pass of the loop.
- ``thread``: a ``SelectConnection`` on a dedicated I/O thread. The asyncio side hands work
  to it with ``add_callback_threadsafe`` and gets results back with ``call_soon_threadsafe``.

The echo server either keeps one consumer (``persistent``) or cancels its consumer before it
acknowledges each message and starts a new one after replying (``per-message``), which is
what the deflector does to keep its prefetch at its free worker slots.

Replies go either to an exclusive, server-named queue (``exclusive``) or through RabbitMQ's
direct reply-to pseudo-queue ``amq.rabbitmq.reply-to`` (``direct``).

    python bench/hop.py --io bridged --reply exclusive --count 5000

Only 127.0.0.1 is used unless ``--url`` names another broker.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import threading
import time
import uuid
from typing import Any, Callable

import pika
from pika.adapters.asyncio_connection import AsyncioConnection
from pika.adapters.select_connection import SelectConnection

from boothby_rabbitmq.streams import BridgedIOServices

DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class AsyncioSide:
    """Runs pika callbacks on the asyncio loop itself."""

    def __init__(self, url: str, loop: asyncio.AbstractEventLoop) -> None:
        self.url = url
        self.loop = loop
        self.channel: Any = None

    def io_services(self) -> Any:
        return self.loop

    async def open(self) -> None:
        opened: asyncio.Future[Any] = self.loop.create_future()

        def on_open(connection: Any) -> None:
            connection.channel(on_open_callback=opened.set_result)

        def on_error(connection: Any, error: BaseException) -> None:
            opened.set_exception(ConnectionError(str(error)))

        AsyncioConnection(pika.URLParameters(self.url), on_open, on_error, custom_ioloop=self.io_services())
        self.channel = await opened

    def run(self, function: Callable[[], None]) -> None:
        function()

    def deliver(self, function: Callable[..., None], *args: Any) -> None:
        function(*args)


class BridgedSide(AsyncioSide):
    """Like ``AsyncioSide``, with the stream on the event loop's transport as the rabbitmq transport runs it."""

    def io_services(self) -> Any:
        return BridgedIOServices(self.loop)


class ThreadSide:
    """Runs pika on its own I/O thread and crosses threads in both directions."""

    def __init__(self, url: str, loop: asyncio.AbstractEventLoop) -> None:
        self.url = url
        self.loop = loop
        self.channel: Any = None
        self.connection: Any = None

    async def open(self) -> None:
        opened: asyncio.Future[Any] = self.loop.create_future()

        def on_channel(channel: Any) -> None:
            self.loop.call_soon_threadsafe(opened.set_result, channel)

        def on_open(connection: Any) -> None:
            connection.channel(on_open_callback=on_channel)

        def on_error(connection: Any, error: BaseException) -> None:
            self.loop.call_soon_threadsafe(opened.set_exception, ConnectionError(str(error)))

        def io_thread() -> None:
            self.connection = SelectConnection(pika.URLParameters(self.url), on_open, on_error)
            self.connection.ioloop.start()

        threading.Thread(target=io_thread, daemon=True, name="pika-io").start()
        self.channel = await opened

    def run(self, function: Callable[[], None]) -> None:
        self.connection.ioloop.add_callback_threadsafe(function)

    def deliver(self, function: Callable[..., None], *args: Any) -> None:
        self.loop.call_soon_threadsafe(function, *args)


SIDES = {"asyncio": AsyncioSide, "bridged": BridgedSide, "thread": ThreadSide}


def echo_server(url: str, io: str, consumer: str, queue: str, ready: Any) -> None:
    loop = new_loop()
    asyncio.set_event_loop(loop)
    side = SIDES[io](url, loop)

    async def serve() -> None:
        await side.open()
        declared: asyncio.Future[Any] = loop.create_future()

        def on_message(channel: Any, method: Any, properties: Any, body: bytes) -> None:
            if consumer == "per-message":
                channel.basic_cancel(method.consumer_tag)
            channel.basic_ack(method.delivery_tag)
            reply = pika.BasicProperties(correlation_id=properties.correlation_id)
            channel.basic_publish("", properties.reply_to, body, reply)
            if consumer == "per-message":
                channel.basic_consume(queue, on_message)

        def declare() -> None:
            # Not auto-delete: the per-message consumer mode leaves the queue without consumers for
            # moments. The broker deletes the queue a minute after its last use instead.
            side.channel.queue_declare(queue, arguments={"x-expires": 60000},
                                       callback=lambda frame: side.deliver(declared.set_result, frame))

        side.run(declare)
        await declared
        side.run(lambda: side.channel.basic_consume(queue, on_message))
        ready.set()
        await asyncio.Event().wait()

    loop.run_until_complete(serve())


async def measure(url: str, io: str, reply: str, queue: str, count: int, size: int, confirm: bool) -> list[float]:
    loop = asyncio.get_running_loop()
    side = SIDES[io](url, loop)
    await side.open()
    waiting: dict[str, asyncio.Future[bytes]] = {}
    confirmations: dict[int, asyncio.Future[None]] = {}

    def on_confirm(frame: Any) -> None:
        # Publisher confirms may acknowledge several deliveries at once ("multiple").
        tag, multiple = frame.method.delivery_tag, frame.method.multiple
        for number in [number for number in confirmations if number == tag or (multiple and number <= tag)]:
            side.deliver(confirmations.pop(number).set_result, None)

    if confirm:
        enabled: asyncio.Future[Any] = loop.create_future()
        side.run(lambda: side.channel.confirm_delivery(
            on_confirm, callback=lambda frame: side.deliver(enabled.set_result, frame)))
        await enabled

    def resolve(correlation_id: str, body: bytes) -> None:
        future = waiting.pop(correlation_id, None)
        if future is not None:
            future.set_result(body)

    def on_reply(channel: Any, method: Any, properties: Any, body: bytes) -> None:
        side.deliver(resolve, properties.correlation_id, body)

    reply_queue: asyncio.Future[str] = loop.create_future()
    if reply == "direct":
        side.run(lambda: side.channel.basic_consume(DIRECT_REPLY_TO, on_reply, auto_ack=True))
        reply_to = DIRECT_REPLY_TO
    else:
        def declare() -> None:
            def on_declared(frame: Any) -> None:
                name = frame.method.queue
                side.channel.basic_consume(name, on_reply, auto_ack=True)
                side.deliver(reply_queue.set_result, name)

            side.channel.queue_declare("", exclusive=True, auto_delete=True, callback=on_declared)

        side.run(declare)
        reply_to = await reply_queue

    body = b"x" * size
    samples = []
    for index in range(count + count // 10):
        correlation_id = uuid.uuid4().hex
        future: asyncio.Future[bytes] = loop.create_future()
        waiting[correlation_id] = future
        if confirm:
            confirmed: asyncio.Future[None] = loop.create_future()
            confirmations[index + 1] = confirmed
        properties = pika.BasicProperties(correlation_id=correlation_id, reply_to=reply_to, expiration="30000")
        start = time.perf_counter()
        side.run(lambda: side.channel.basic_publish("", queue, body, properties))
        if confirm:
            await confirmed
        await future
        if index >= count // 10:
            samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    parser.add_argument("--io", choices=sorted(SIDES), default="bridged")
    parser.add_argument("--reply", choices=["direct", "exclusive"], default="exclusive")
    parser.add_argument("--consumer", choices=["persistent", "per-message"], default="persistent",
                        help="echo server: one consumer for the whole run, or a new consumer for each message, "
                             "cancelled before the message is acknowledged")
    parser.add_argument("--confirm", action="store_true",
                        help="enable publisher confirms and wait for each request's confirm as well as its reply")
    parser.add_argument("--count", type=int, default=5000, help="measured round trips, after 10%% warm-up")
    parser.add_argument("--size", type=int, default=600, help="message body size in bytes")
    args = parser.parse_args()

    queue = f"bench.hop.{uuid.uuid4().hex[:8]}"
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=echo_server, args=(args.url, args.io, args.consumer, queue, ready), daemon=True)
    server.start()
    try:
        if not ready.wait(30):
            raise SystemExit("the echo server did not start within 30s")
        loop = new_loop()
        samples = loop.run_until_complete(measure(args.url, args.io, args.reply, queue, args.count, args.size, args.confirm))
    finally:
        server.terminate()
        server.join(5)
    samples.sort()
    milliseconds = [sample * 1000 for sample in samples]
    print(f"io={args.io} reply={args.reply} consumer={args.consumer} confirm={args.confirm} n={len(samples)} size={args.size}B  "
          f"p50={statistics.median(milliseconds):.3f} ms  p90={milliseconds[int(len(samples) * 0.9)]:.3f} ms  "
          f"p99={milliseconds[int(len(samples) * 0.99)]:.3f} ms")


if __name__ == "__main__":
    main()
