"""In-process grappler and deflector ends of a transport, built only from the public Transport API."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any, Callable, Mapping, Sequence

from ..errors import BoothbyError, CodecError, TransportUnavailable
from ..transport import Delivery, Transport
from .messages import decode_invocation, decode_result, encode_invocation, encode_result, invocation_record, unique_name
from .running import wait_until, within

logger = logging.getLogger(__name__)

TransportFactory = Callable[..., Transport]


def same_bytes(expected: bytes, actual: bytes) -> bool:
    return bytes(expected) == bytes(actual)


def describe_difference(expected: bytes, actual: bytes) -> str:
    """Describe where two byte strings differ without printing megabytes of them."""
    expected, actual = bytes(expected), bytes(actual)
    if len(expected) != len(actual):
        return f"expected {len(expected)} bytes, got {len(actual)}"
    index = next(i for i, (a, b) in enumerate(zip(expected, actual)) if a != b)
    return (
        f"{len(expected)} bytes each, first difference at byte {index}: "
        f"expected {expected[index:index + 16]!r}, got {actual[index:index + 16]!r}"
    )


class ClientEndpoint:
    """A grappler's end: one started client transport and everything its callbacks received."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.address = ""
        self.replies: list[bytes] = []
        self.disconnects: list[str] = []
        self.wrong_thread_calls: list[str] = []
        self.closed = False
        self._loop_thread = threading.get_ident()

    async def start(self, seconds: float) -> str:
        self.address = await within(self.transport.start_client(self.on_reply, self.on_disconnect), seconds,
                                    "start_client()")
        return self.address

    def on_reply(self, payload: bytes) -> None:
        if threading.get_ident() != self._loop_thread:
            self.wrong_thread_calls.append("on_reply")
        self.replies.append(bytes(payload))

    def on_disconnect(self, reason: str) -> None:
        if threading.get_ident() != self._loop_thread:
            self.wrong_thread_calls.append("on_disconnect")
        self.disconnects.append(reason)

    def reply_ids(self) -> list[str]:
        """Return the request ids of the replies received so far; undecodable replies are left out."""
        ids = []
        for payload in self.replies:
            try:
                ids.append(decode_result(payload)["id"])
            except CodecError:
                continue
        return ids

    def replies_for(self, request_id: str) -> list[bytes]:
        return [payload for payload, reply_id in zip(self.replies, self._ids_or_none()) if reply_id == request_id]

    def _ids_or_none(self) -> list[str | None]:
        ids: list[str | None] = []
        for payload in self.replies:
            try:
                ids.append(decode_result(payload)["id"])
            except CodecError:
                ids.append(None)
        return ids

    async def publish(self, function: str, *, body: bytes | None = None, deadline: float | None = None,
                      seconds: float = 10.0) -> tuple[str, bytes]:
        """Publish one invocation whose reply address is this client's; return its request id and its bytes."""
        record = invocation_record(function, reply_to=self.address, body=body, deadline=deadline)
        payload = encode_invocation(record)
        await within(
            self.transport.publish(function, payload, request_id=record["id"], deadline=record["deadline_ms"] / 1000),
            seconds, "publish()",
        )
        return record["id"], payload

    async def wait_for_result(self, request_id: str, seconds: float) -> dict[str, Any]:
        await wait_until(lambda: bool(self.replies_for(request_id)), seconds, f"the reply to request {request_id}")
        return decode_result(self.replies_for(request_id)[0])


class EchoDeflector:
    """A minimal deflector built from the public Transport API.

    For each function it calls ``receive`` in a loop, drops expired invocations the way
    Boothby's deflector does (``finished`` without a reply), and replies to the others with a
    ``Result`` whose body is the invocation's body, calling ``started`` and ``finished``
    around the reply. Errors from ``receive`` in ``transport.connection_errors`` or
    ``BoothbyError`` are retried with back-off as the real deflector retries them; any other
    error stops the loop and is kept in ``errors``.
    """

    def __init__(self, transport: Transport, functions: Sequence[str], *, max_count: int = 1,
                 work_time: float = 0.0, label: str = "deflector") -> None:
        self.transport = transport
        self.functions = list(functions)
        self.max_count = max_count
        self.work_time = work_time
        self.label = label
        self.received: list[bytes] = []
        self.received_ids: list[str] = []
        self.expired_ids: list[str] = []
        self.sent: dict[str, bytes] = {}
        self.oversized_batches: list[int] = []
        self.receive_failures: list[BaseException] = []
        self.reply_failures: list[BaseException] = []
        self.errors: list[str] = []
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> "EchoDeflector":
        for function in self.functions:
            self._tasks.append(asyncio.create_task(self._consume(function), name=f"{self.label}-{function}"))
        return self

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _consume(self, function: str) -> None:
        delay = 0.05
        while True:
            try:
                deliveries = await self.transport.receive(function, self.max_count)
            except asyncio.CancelledError:
                raise
            except self.transport.connection_errors + (BoothbyError,) as error:
                self.receive_failures.append(error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            except Exception as error:
                self.errors.append(f"{self.label}: receive({function!r}) raised {type(error).__name__}: {error}")
                logger.exception("conformance deflector %s: receive(%r) failed", self.label, function)
                return
            delay = 0.05
            if not 1 <= len(deliveries) <= self.max_count:
                self.oversized_batches.append(len(deliveries))
            for delivery in deliveries:
                try:
                    await self._handle(delivery)
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    self.errors.append(f"{self.label}: handling a delivery raised {type(error).__name__}: {error}")
                    logger.exception("conformance deflector %s: a delivery failed", self.label)

    async def _handle(self, delivery: Delivery) -> None:
        payload = bytes(delivery.payload)
        self.received.append(payload)
        try:
            invocation = decode_invocation(payload)
        except CodecError as error:
            self.errors.append(f"{self.label}: received a payload that is not the published invocation: {error}")
            await delivery.finished()
            return

        request_id = invocation["id"]
        self.received_ids.append(request_id)
        if time.time() >= invocation["deadline_ms"] / 1000:
            self.expired_ids.append(request_id)
            await delivery.finished()
            return

        await delivery.started()
        if self.work_time:
            await asyncio.sleep(self.work_time)
        result = encode_result(request_id, invocation["body"])
        self.sent[request_id] = result
        try:
            await self.transport.reply(invocation["reply_to"], result, request_id=request_id)
        except self.transport.connection_errors + (BoothbyError,) as error:
            self.reply_failures.append(error)
        await delivery.finished()


class TransportHarness:
    """The clients, servers and deflectors of one test, closed at the end of the test."""

    def __init__(self, factory: TransportFactory, seconds: float) -> None:
        self.factory = factory
        self.seconds = seconds
        self.functions: list[str] = []
        self.clients: list[ClientEndpoint] = []
        self.servers: list[Transport] = []
        self.deflectors: list[EchoDeflector] = []

    def function(self) -> str:
        """Return a new function name; transports created afterwards find it in their configuration."""
        name = unique_name()
        self.functions.append(name)
        return name

    def transport(self, settings: Mapping[str, Any] | None = None) -> Transport:
        """Create a transport whose configuration lists this test's functions, as a grappler's or deflector's does."""
        return self.factory(settings, self.functions)

    async def client(self, settings: Mapping[str, Any] | None = None) -> ClientEndpoint:
        """Create and start a client; ``settings`` replaces the suite's transport settings."""
        endpoint = ClientEndpoint(self.transport(settings))
        self.clients.append(endpoint)
        await endpoint.start(self.seconds)
        return endpoint

    async def server(self, functions: Sequence[str]) -> Transport:
        transport = self.transport()
        self.servers.append(transport)
        await within(transport.start_server(list(functions)), self.seconds, "start_server()")
        return transport

    def deflector(self, server: Transport, functions: Sequence[str], **options: Any) -> EchoDeflector:
        deflector = EchoDeflector(server, functions, **options).start()
        self.deflectors.append(deflector)
        return deflector

    async def close_client(self, client: ClientEndpoint) -> None:
        if not client.closed:
            client.closed = True
            await within(client.transport.close(), self.seconds, "close() of a client")

    async def close_server(self, server: Transport) -> None:
        """Stop the server's deflectors, then close it, in the order Boothby's deflector stops."""
        for deflector in [deflector for deflector in self.deflectors if deflector.transport is server]:
            await self.stop_deflector(deflector)
        if server in self.servers:
            self.servers.remove(server)
            await within(server.close(), self.seconds, "close() of a server")

    async def stop_deflector(self, deflector: EchoDeflector) -> None:
        await within(deflector.stop(), self.seconds, f"receive() of the {deflector.label} to return after it was cancelled")

    async def close(self) -> None:
        for deflector in self.deflectors:
            await self.stop_deflector(deflector)
        for client in self.clients:
            await self.close_client(client)
        for server in list(self.servers):
            await self.close_server(server)

    def problems(self) -> list[str]:
        """Return the contract breaks seen in callbacks and deflector loops during the test."""
        found = []
        for client in self.clients:
            for name in sorted(set(client.wrong_thread_calls)):
                found.append(f"{name} was called from a thread other than the event loop's")
        for deflector in self.deflectors:
            found += deflector.errors
            found += [f"{deflector.label}: receive(max_count={deflector.max_count}) returned {count} deliveries"
                      for count in deflector.oversized_batches]
        return found


class PublishProbe:
    """A task that publishes one invocation every ``interval`` seconds while a broker restarts, with the outcomes."""

    def __init__(self, client: ClientEndpoint, function: str, seconds: float, interval: float = 0.1,
                 limit: int = 1000) -> None:
        self.client = client
        self.function = function
        self.seconds = seconds
        self.interval = interval
        self.limit = limit
        self.published = 0
        self.unavailable = 0
        self.unexpected: list[str] = []
        self.stopped = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self.stopped.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        for _ in range(self.limit):
            if self.stopped.is_set():
                return
            try:
                await self.client.publish(self.function, deadline=time.time() + 5.0, seconds=self.seconds)
                self.published += 1
            except TransportUnavailable:
                self.unavailable += 1
            except Exception as error:
                self.unexpected.append(f"{type(error).__name__}: {error}")
            try:
                await asyncio.wait_for(self.stopped.wait(), self.interval)
            except asyncio.TimeoutError:
                pass
