"""The embedded transport: grappler processes talk to one deflector over a local unix socket.

No broker is needed. The deflector listens on the socket and keeps one in-memory queue per
function. Each grappler worker process connects, sends its reply address first, and receives its
results on the same connection. Frames are ``uint32 BE length | uint8 kind | data``.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import socket
import struct
import tempfile
import uuid
from collections import deque
from pathlib import Path
from typing import Any, Mapping, Sequence

from .. import hookimpl
from ..codec import decode_invocation_head, result_schema
from ..config import Config
from ..errors import CodecError, ConfigError, TransportUnavailable
from ..transport import Delivery, OnDisconnect, OnReply, Transport

logger = logging.getLogger(__name__)

_FRAME = struct.Struct(">IB")
_HELLO, _INVOKE, _RESULT = 1, 2, 3
_MAX_FRAME = 1 << 30
_RECONNECT_DELAYS = (0.05, 0.1, 0.2, 0.5, 1.0)


def default_socket_path(config: Config) -> Path:
    """Return the default socket path: one per user and grappler port, in the temp directory."""
    return Path(tempfile.gettempdir()) / f"boothby-{os.getuid()}" / f"embedded-{config.grappler.port}.sock"


class _FrameReader(asyncio.Protocol):
    """Splits the byte stream into frames and hands each to ``frame_received``."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        offset = 0
        size = len(buffer)
        while size - offset >= 5:
            length, kind = _FRAME.unpack_from(buffer, offset)
            if length > _MAX_FRAME:
                logger.error("embedded transport: frame of %d bytes is too large; closing the connection", length)
                self.transport.close()  # type: ignore[union-attr]
                return
            end = offset + 5 + length
            if end > size:
                break
            self.frame_received(kind, bytes(buffer[offset + 5:end]))
            offset = end
        if offset:
            del buffer[:offset]

    def send(self, kind: int, data: bytes) -> None:
        self.transport.write(_FRAME.pack(len(data), kind) + data)  # type: ignore[union-attr]

    def frame_received(self, kind: int, data: bytes) -> None:
        raise NotImplementedError


class _ServerConnection(_FrameReader):
    def __init__(self, server: EmbeddedTransport) -> None:
        super().__init__()
        self.server = server
        self.address: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.server._accepted.add(self)

    def frame_received(self, kind: int, data: bytes) -> None:
        if kind == _INVOKE:
            name_length = data[0]
            function = data[1:1 + name_length].decode("utf-8")
            self.server._enqueue(function, data[1 + name_length:])
        elif kind == _HELLO:
            self.address = data.decode("utf-8")
            self.server._connections[self.address] = self
            logger.debug("embedded transport: grappler %s connected", self.address)
        else:
            logger.warning("embedded transport: unexpected frame kind %d from %s", kind, self.address)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._accepted.discard(self)
        if self.address and self.server._connections.get(self.address) is self:
            del self.server._connections[self.address]
        logger.debug("embedded transport: grappler %s disconnected", self.address)


class _ClientConnection(_FrameReader):
    def __init__(self, client: EmbeddedTransport) -> None:
        super().__init__()
        self.client = client

    def frame_received(self, kind: int, data: bytes) -> None:
        if kind == _RESULT and self.client._on_reply is not None:
            self.client._on_reply(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client._connection_lost(self, exc)


class EmbeddedTransport(Transport):
    """Invocations and results over one local unix socket, with the queues inside the deflector."""

    name = "embedded"

    def __init__(self, settings: Mapping[str, Any], config: Config) -> None:
        super().__init__(settings, config)
        unknown = set(settings) - {"socket", "max_queue"}
        if unknown:
            raise ConfigError([f"unknown key transport.embedded.{key}; allowed keys: max_queue, socket" for key in sorted(unknown)])
        self.path = Path(settings["socket"]) if settings.get("socket") else default_socket_path(config)
        self.max_queue = int(settings.get("max_queue", 10000))
        if len(str(self.path).encode()) > 100:
            raise ConfigError([f"transport.embedded.socket = {str(self.path)!r} is too long for a unix socket path (max about 100 bytes); choose a shorter path"])
        self._queues: dict[str, deque[bytes]] = {}
        self._ready: dict[str, asyncio.Event] = {}
        self._connections: dict[str, _ServerConnection] = {}
        self._accepted: set[_ServerConnection] = set()
        self._server: asyncio.AbstractServer | None = None
        self._client: _ClientConnection | None = None
        self._on_reply: OnReply | None = None
        self._on_disconnect: OnDisconnect | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._closing = False
        self.address = ""

    # Deflector side.

    async def start_server(self, functions: Sequence[str]) -> None:
        for function in functions:
            self._queues[function] = deque()
            self._ready[function] = asyncio.Event()
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.path.exists():
            if _socket_answers(self.path):
                raise TransportUnavailable(
                    f"embedded transport: another deflector already listens on {self.path}; stop it, or set "
                    "[transport.embedded] socket to another path", backend=self.name,
                )
            self.path.unlink()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(lambda: _ServerConnection(self), str(self.path))
        os.chmod(self.path, 0o600)
        logger.info("embedded transport: listening on %s", self.path)

    def _enqueue(self, function: str, payload: bytes) -> None:
        queue = self._queues.get(function)
        if queue is None:
            logger.warning("embedded transport: invocation for unknown function %r dropped", function)
            return
        if len(queue) >= self.max_queue:
            self._reject_full(function, payload)
            return
        queue.append(payload)
        self._ready[function].set()

    def _reject_full(self, function: str, payload: bytes) -> None:
        logger.warning("embedded transport: the queue of %r is full (%d invocations); responding 503", function, self.max_queue)
        self._answer_unavailable(payload, "queue full",
                                 f"the queue of function {function!r} holds {self.max_queue} invocations; retry later")

    def _answer_unavailable(self, payload: bytes, error: str, message: str) -> None:
        """Send a 503 result for an invocation that will not run, so its caller does not wait for the deadline."""
        try:
            invocation = decode_invocation_head(payload)
        except CodecError as decode_error:
            logger.warning("embedded transport: dropped an undecodable invocation: %s", decode_error)
            return
        body = json.dumps({"error": error, "message": message, "requestId": invocation.id}).encode()
        result = result_schema().encode({
            "id": invocation.id, "status": 503, "body": body, "error": "unavailable",
            "headers": [{"name": "content-type", "value": "application/json"}],
        })
        connection = self._connections.get(invocation.reply_to)
        if connection is not None:
            connection.send(_RESULT, result)

    async def receive(self, function: str, max_count: int) -> list[Delivery]:
        queue = self._queues[function]
        ready = self._ready[function]
        while not queue:
            ready.clear()
            await ready.wait()
        count = min(max_count, len(queue))
        return [Delivery(queue.popleft()) for _ in range(count)]

    async def reply(self, address: str, payload: bytes, *, request_id: str) -> None:
        connection = self._connections.get(address)
        if connection is None:
            logger.warning("embedded transport: grappler %s is gone; result of request %s dropped", address, request_id)
            return
        connection.send(_RESULT, payload)

    # Grappler side.

    @property
    def connected(self) -> bool:
        client = self._client
        return client is not None and client.transport is not None and not client.transport.is_closing()

    async def start_client(self, on_reply: OnReply, on_disconnect: OnDisconnect) -> str:
        self._on_reply = on_reply
        self._on_disconnect = on_disconnect
        self.address = f"embedded:{os.getpid()}-{uuid.uuid4().hex[:12]}"
        try:
            await self._connect()
        except OSError as error:
            logger.warning("embedded transport: deflector socket %s not reachable yet (%s); retrying in the background", self.path, error)
            self._reconnect_task = asyncio.create_task(self._reconnect())
        return self.address

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_unix_connection(lambda: _ClientConnection(self), str(self.path))
        connection.send(_HELLO, self.address.encode())
        self._client = connection
        logger.info("embedded transport: connected to the deflector at %s", self.path)

    async def _reconnect(self) -> None:
        attempt = 0
        while not self._closing:
            await asyncio.sleep(_RECONNECT_DELAYS[min(attempt, len(_RECONNECT_DELAYS) - 1)])
            attempt += 1
            try:
                await self._connect()
                return
            except OSError as error:
                if attempt == 1 or attempt % 20 == 0:
                    logger.warning("embedded transport: reconnect attempt %d to %s failed: %s", attempt, self.path, error)
        self._reconnect_task = None

    def _connection_lost(self, connection: _ClientConnection, exc: Exception | None) -> None:
        if self._client is connection:
            self._client = None
        if self._closing:
            return
        reason = f"connection to the deflector at {self.path} was lost"
        logger.warning("embedded transport: %s (%s); reconnecting", reason, exc or "closed by peer")
        if self._on_disconnect is not None:
            self._on_disconnect(reason)
        if self._reconnect_task is None or self._reconnect_task.done():
            self._reconnect_task = asyncio.create_task(self._reconnect())

    async def publish(self, function: str, payload: bytes, *, request_id: str, deadline: float) -> None:
        client = self._client
        if not self.connected:
            raise TransportUnavailable(
                f"the deflector is not reachable at {self.path}; start it with `boothby deflector` or `boothby up`",
                backend=self.name,
            )
        name = function.encode("utf-8")
        client.send(_INVOKE, bytes([len(name)]) + name + payload)

    async def close(self) -> None:
        self._closing = True
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
        if self._client is not None and self._client.transport is not None:
            self._client.transport.close()
        if self._server is not None:
            # No other deflector can run what is still queued here, so respond to it instead of dropping it.
            waiting = sum(len(queue) for queue in self._queues.values())
            if waiting:
                logger.warning("embedded transport: the deflector stops with %d invocations queued; responding 503 to them", waiting)
            for queue in self._queues.values():
                while queue:
                    self._answer_unavailable(queue.popleft(), "shutting down",
                                             "the deflector stopped before it could run this request; retry it")
            self._server.close()
            # Server.close() leaves accepted connections open: close them so that grapplers fail
            # their waiting calls at once instead of publishing into queues nobody reads.
            for connection in list(self._accepted):
                if connection.transport is not None:
                    connection.transport.close()
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass


def _socket_answers(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
        return True
    except OSError as error:
        if error.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            logger.debug("embedded transport: probing %s failed: %s", path, error)
        return False
    finally:
        probe.close()


@hookimpl
def boothby_register_transports(register):
    register("embedded", EmbeddedTransport)
