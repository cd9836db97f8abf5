"""Client side of the Avro RPC protocol spoken with worker processes over a unix socket.

Wire format (the stateful framing used by the npm package avsc and by Netty): each message is
``int32 BE call id | int32 BE frame count | frames``, and each frame is ``int32 BE length | bytes``.
A message's payload is its frames joined. The first request on a connection starts with the Avro
``HandshakeRequest`` and the first response with the ``HandshakeResponse``. A request is then
``metadata map<bytes> | message name string | parameters record``; a response is
``metadata map<bytes> | error flag boolean | response or error union``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import struct
from typing import Any

from .codec import decode_long, decode_string, worker_protocol, worker_result_schema
from .errors import WorkerError

_HEADER = struct.Struct(">II")
_LENGTH = struct.Struct(">I")
_MAX_CALL_ID = 65535  # avsc drops ids with any of the top 16 bits set when no scope is used
_EMPTY_METADATA = b"\x00"


def encode_long(value: int) -> bytes:
    """Encode an Avro ``long``: zig-zag, then base-128 varint."""
    value = (value << 1) ^ (value >> 63)
    out = bytearray()
    while value & ~0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return encode_long(len(raw)) + raw


def _skip_bytes(data: memoryview, position: int) -> int:
    length, position = decode_long(data, position)
    return position + length


def _skip_map_of_bytes(data: memoryview, position: int) -> int:
    while True:
        count, position = decode_long(data, position)
        if count == 0:
            return position
        if count < 0:
            count = -count
            _, position = decode_long(data, position)  # block size in bytes
        for _ in range(count):
            position = _skip_bytes(data, position)
            position = _skip_bytes(data, position)


def protocol_text_and_hash() -> tuple[str, bytes]:
    """Return the worker protocol as compact JSON and its MD5, as avsc computes a protocol hash."""
    text = json.dumps(worker_protocol(), separators=(",", ":"), ensure_ascii=False)
    return text, hashlib.md5(text.encode("utf-8")).digest()


class RemoteError(WorkerError):
    """The worker responded to a call with an RPC-level error instead of a result."""


class WorkerConnection(asyncio.Protocol):
    """One connection to a worker; several calls may be in flight, matched by call id."""

    def __init__(self, function: str = "", pid: int | None = None) -> None:
        self.function = function
        self.pid = pid
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._pending: dict[int, asyncio.Future[memoryview]] = {}
        self._next_id = 0
        self._handshake_done = False
        self._closed_reason: str | None = None
        protocol_text, protocol_hash = protocol_text_and_hash()
        self._handshake = (
            protocol_hash + b"\x02" + encode_string(protocol_text) + protocol_hash + b"\x00"
        )
        self._message_name = encode_string("invoke")
        self._result_schema = worker_result_schema()

    @classmethod
    async def open(cls, path: str, function: str = "", pid: int | None = None) -> "WorkerConnection":
        """Connect to the worker listening on ``path`` and complete the handshake."""
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_unix_connection(lambda: cls(function, pid), path)
        await connection.handshake()
        return connection

    @property
    def closed(self) -> bool:
        return self._closed_reason is not None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f"connection lost: {exc}" if exc else "worker closed the connection"
        self._fail_all(reason)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        self._fail_all("connection closed by the deflector")

    def _fail_all(self, reason: str) -> None:
        if self._closed_reason is None:
            self._closed_reason = reason
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(WorkerError(reason, function=self.function, pid=self.pid))

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        offset = 0
        size = len(buffer)
        while size - offset >= 8:
            call_id, frame_count = _HEADER.unpack_from(buffer, offset)
            position = offset + 8
            frames = []
            for _ in range(frame_count):
                if size - position < 4:
                    break
                (length,) = _LENGTH.unpack_from(buffer, position)
                position += 4
                if size - position < length:
                    break
                frames.append(bytes(buffer[position:position + length]))
                position += length
            else:
                offset = position
                self._dispatch(call_id, frames[0] if len(frames) == 1 else b"".join(frames))
                continue
            break
        if offset:
            del buffer[:offset]

    def _dispatch(self, call_id: int, payload: bytes) -> None:
        future = self._pending.pop(call_id, None)
        if future is not None and not future.done():
            future.set_result(memoryview(payload))

    def _send(self, call_id: int, body: list[bytes]) -> None:
        length = sum(len(part) for part in body)
        self._transport.write(b"".join([_HEADER.pack(call_id, 1), _LENGTH.pack(length), *body]))  # type: ignore[union-attr]

    def _new_call(self) -> tuple[int, asyncio.Future[memoryview]]:
        if self._closed_reason is not None:
            raise WorkerError(self._closed_reason, function=self.function, pid=self.pid)
        for _ in range(_MAX_CALL_ID):
            self._next_id = self._next_id % _MAX_CALL_ID + 1
            if self._next_id not in self._pending:
                break
        else:
            raise WorkerError("too many calls in flight on one worker connection", self.function, self.pid)
        future: asyncio.Future[memoryview] = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = future
        return self._next_id, future

    async def handshake(self) -> None:
        """Exchange the Avro handshake with a ping (a call with an empty message name).

        Doing it once, right after connecting, keeps the handshake off every later call, so
        concurrent calls never wait for one another.
        """
        call_id, future = self._new_call()
        self._send(call_id, [self._handshake, _EMPTY_METADATA, encode_string("")])
        payload = await future
        position = self._read_handshake(payload)
        position = _skip_map_of_bytes(payload, position)
        if payload[position]:
            _, position = decode_long(payload, position + 1)
            message, _ = decode_string(payload, position, errors="replace")
            raise RemoteError(f"the worker rejected the RPC handshake: {message}", self.function, self.pid)
        self._handshake_done = True

    async def invoke(self, invocation_record: bytes | memoryview) -> dict[str, Any]:
        """Call ``invoke`` with an Avro-encoded ``Invocation`` record; return the decoded ``WorkerResult``.

        Raises ``WorkerError`` when the connection is lost before the response arrives, and
        ``RemoteError`` when the worker responds with an error instead of a result.
        """
        if not self._handshake_done:
            raise WorkerError("invoke() called before the handshake; connect with WorkerConnection.open()",
                              self.function, self.pid)
        payload = await self._call([], invocation_record)
        return self._read_response(payload, 0)

    async def _call(self, prefix: list[bytes], invocation_record: bytes | memoryview) -> memoryview:
        call_id, future = self._new_call()
        self._send(call_id, [*prefix, _EMPTY_METADATA, self._message_name, invocation_record])
        return await future

    def _read_handshake(self, payload: memoryview) -> int:
        match, position = decode_long(payload, 0)
        index, position = decode_long(payload, position)
        if index == 1:
            position = _skip_bytes(payload, position)
        index, position = decode_long(payload, position)
        if index == 1:
            position += 16
        index, position = decode_long(payload, position)
        if index == 1:
            position = _skip_map_of_bytes(payload, position)
        if match == 2:
            raise RemoteError("the worker rejected the RPC handshake (protocol mismatch)", self.function, self.pid)
        return position

    def _read_response(self, payload: memoryview, position: int) -> dict[str, Any]:
        position = _skip_map_of_bytes(payload, position)
        is_error = payload[position]
        position += 1
        if is_error:
            _, position = decode_long(payload, position)
            message, _ = decode_string(payload, position, errors="replace")
            raise RemoteError(f"worker returned an RPC error: {message}", self.function, self.pid)
        return self._result_schema.decode_bare(payload[position:])
