"""Server side of the worker's Avro RPC protocol: framing, handshake and call encoding."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import struct
from dataclasses import dataclass
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import SchemaParseException, UnknownType

# The handshake records that the Avro specification defines for RPC.
MD5 = {"type": "fixed", "name": "MD5", "namespace": "org.apache.avro.ipc", "size": 16}
HANDSHAKE_REQUEST = parse_schema({
    "type": "record",
    "name": "HandshakeRequest",
    "namespace": "org.apache.avro.ipc",
    "fields": [
        {"name": "clientHash", "type": MD5},
        {"name": "clientProtocol", "type": ["null", "string"]},
        {"name": "serverHash", "type": "MD5"},
        {"name": "meta", "type": ["null", {"type": "map", "values": "bytes"}]},
    ],
})
HANDSHAKE_RESPONSE = parse_schema({
    "type": "record",
    "name": "HandshakeResponse",
    "namespace": "org.apache.avro.ipc",
    "fields": [
        {"name": "match", "type": {"type": "enum", "name": "HandshakeMatch", "symbols": ["BOTH", "CLIENT", "NONE"]}},
        {"name": "serverProtocol", "type": ["null", "string"]},
        {"name": "serverHash", "type": ["null", MD5]},
        {"name": "meta", "type": ["null", {"type": "map", "values": "bytes"}]},
    ],
})
METADATA = parse_schema({"type": "map", "values": "bytes"})
STRING = parse_schema("string")
BOOLEAN = parse_schema("boolean")
SYSTEM_ERROR = parse_schema(["string"])

HEADER = struct.Struct(">ii")
FRAME_LENGTH = struct.Struct(">i")
MESSAGE_NAME = "invoke"


class ProtocolError(Exception):
    """The peer sent bytes that do not follow the worker protocol."""


def build_protocol(schemas_dir: str) -> dict[str, Any]:
    """Build the worker protocol from ``$BOOTHBY_SCHEMAS``: ``worker.avpr`` with both record schemas as its types."""
    with open(os.path.join(schemas_dir, "worker.avpr"), encoding="utf-8") as file:
        protocol = json.load(file)
    types = []
    for name in ("invocation.avsc", "worker-result.avsc"):
        with open(os.path.join(schemas_dir, name), encoding="utf-8") as file:
            types.append(json.load(file))
    protocol["types"] = types
    return protocol


def parse_message_schemas(protocol: dict[str, Any]) -> tuple[Any, Any]:
    """Return the parsed request record and response record of the ``invoke`` message of ``protocol``."""
    namespace = protocol.get("namespace") or ""
    named: dict[str, Any] = {}
    parsed: dict[str, Any] = {}

    def parse(schema: Any) -> Any:
        if isinstance(schema, str):
            full_name = schema if "." in schema or not namespace else f"{namespace}.{schema}"
            if full_name not in parsed:
                raise ProtocolError(f"protocol {protocol.get('protocol')!r} does not define type {schema!r}")
            return parsed[full_name]
        if isinstance(schema, dict) and namespace and "namespace" not in schema:
            schema = {**schema, "namespace": namespace}
        return parse_schema(schema, named_schemas=named)

    for schema in protocol.get("types", []):
        result = parse(schema)
        if isinstance(result, dict) and "name" in result:
            parsed[result["name"]] = result

    message = protocol.get("messages", {}).get(MESSAGE_NAME)
    if message is None:
        raise ProtocolError(f"protocol {protocol.get('protocol')!r} has no {MESSAGE_NAME!r} message")
    parameters = message.get("request", [])
    if len(parameters) != 1:
        raise ProtocolError(f"message {MESSAGE_NAME!r} must take exactly one parameter, got {len(parameters)}")
    return parse(parameters[0]["type"]), parse(message["response"])


class WorkerProtocol:
    """This worker's side of the protocol: its JSON text, MD5 hash and parsed message schemas."""

    def __init__(self, protocol: dict[str, Any]) -> None:
        # Compact JSON in the key order of the files, as JSON.stringify writes it: the deflector
        # hashes the same text, so its handshake then matches BOTH instead of CLIENT.
        self.text = json.dumps(protocol, separators=(",", ":"), ensure_ascii=False)
        self.hash = hashlib.md5(self.text.encode("utf-8")).digest()
        self.invocation_schema, self.result_schema = parse_message_schemas(protocol)

    @classmethod
    def from_schemas_dir(cls, schemas_dir: str) -> WorkerProtocol:
        return cls(build_protocol(schemas_dir))


@dataclass
class Call:
    """One decoded request: its call id, the encoded ``HandshakeResponse`` its response must carry, and its message.

    ``accepted`` is false when the handshake matched ``NONE``: the call must not run.
    """

    call_id: int
    handshake: bytes
    accepted: bool
    message: str
    invocation: dict[str, Any] | None


class ConnectionState:
    """Handshake state of one connection: the first request carries a handshake, later ones do not."""

    def __init__(self, protocol: WorkerProtocol) -> None:
        self.protocol = protocol
        self.handshake_done = False
        # Schema the client writes invocations with. It differs from ours only after a CLIENT match.
        self.writer_schema: Any = protocol.invocation_schema
        self.reader_schema: Any = None

    def decode_call(self, call_id: int, payload: bytes) -> Call:
        """Decode one request payload. Raise ``ProtocolError`` when it cannot be read."""
        stream = io.BytesIO(payload)
        handshake = b""
        try:
            if not self.handshake_done:
                handshake, accepted = self._answer_handshake(schemaless_reader(stream, HANDSHAKE_REQUEST))
                if not accepted:
                    return Call(call_id, handshake, False, "", None)
            schemaless_reader(stream, METADATA)
            message = schemaless_reader(stream, STRING)
            invocation = None
            if message == MESSAGE_NAME:
                invocation = schemaless_reader(stream, self.writer_schema, self.reader_schema)
        except (EOFError, ValueError, TypeError, KeyError, IndexError, UnicodeDecodeError) as error:
            raise ProtocolError(f"call {call_id}: undecodable request ({type(error).__name__}: {error})") from error
        return Call(call_id, handshake, True, message, invocation)

    def _answer_handshake(self, request: dict[str, Any]) -> tuple[bytes, bool]:
        """Encode the ``HandshakeResponse`` for ``request`` and tell whether the call may run.

        The client's protocol is known when its hash is ours or when it sent its text and that text
        has a compatible ``invoke`` message. The match is then ``BOTH`` when the client also guessed
        our hash, else ``CLIENT`` with our protocol attached. An unknown protocol gets ``NONE``.
        """
        protocol = self.protocol
        known = request["clientHash"] == protocol.hash
        if not known and request["clientProtocol"] is not None:
            try:
                writer_schema, _ = parse_message_schemas(json.loads(request["clientProtocol"]))
            except (ValueError, TypeError, KeyError, SchemaParseException, UnknownType, ProtocolError):
                writer_schema = None
            if writer_schema is not None:
                self.writer_schema = writer_schema
                self.reader_schema = protocol.invocation_schema
                known = True

        if known and request["serverHash"] == protocol.hash:
            response = {"match": "BOTH", "serverProtocol": None, "serverHash": None, "meta": None}
        elif known:
            response = {"match": "CLIENT", "serverProtocol": protocol.text, "serverHash": protocol.hash, "meta": None}
        else:
            response = {"match": "NONE", "serverProtocol": protocol.text, "serverHash": protocol.hash, "meta": None}
        self.handshake_done = known

        stream = io.BytesIO()
        schemaless_writer(stream, HANDSHAKE_RESPONSE, response)
        return stream.getvalue(), known


def encode_result(protocol: WorkerProtocol, handshake: bytes, result: dict[str, Any] | None) -> bytes:
    """Encode a successful response payload, where ``result`` is ``None`` for a ping (empty message name)."""
    stream = io.BytesIO()
    stream.write(handshake)
    schemaless_writer(stream, METADATA, {})
    schemaless_writer(stream, BOOLEAN, False)
    if result is not None:
        schemaless_writer(stream, protocol.result_schema, result)
    return stream.getvalue()


def encode_system_error(handshake: bytes, message: str) -> bytes:
    """Encode an RPC error response payload. The deflector then responds to the HTTP request with 502."""
    stream = io.BytesIO()
    stream.write(handshake)
    schemaless_writer(stream, METADATA, {})
    schemaless_writer(stream, BOOLEAN, True)
    schemaless_writer(stream, SYSTEM_ERROR, message)
    return stream.getvalue()


async def read_message(reader: asyncio.StreamReader) -> tuple[int, bytes] | None:
    """Read one framed message and return its call id and joined payload, or ``None`` at end of stream."""
    try:
        header = await reader.readexactly(HEADER.size)
    except asyncio.IncompleteReadError as error:
        if error.partial:
            raise ProtocolError(f"connection closed inside a message header ({len(error.partial)} bytes)") from error
        return None
    call_id, frame_count = HEADER.unpack(header)
    if frame_count < 0:
        raise ProtocolError(f"call {call_id}: invalid frame count {frame_count}")
    frames = []
    try:
        for _ in range(frame_count):
            (length,) = FRAME_LENGTH.unpack(await reader.readexactly(FRAME_LENGTH.size))
            if length < 0:
                raise ProtocolError(f"call {call_id}: invalid frame length {length}")
            frames.append(await reader.readexactly(length))
    except asyncio.IncompleteReadError as error:
        raise ProtocolError(f"call {call_id}: connection closed inside a message") from error
    return call_id, b"".join(frames)


def frame_message(call_id: int, payload: bytes) -> bytes:
    """Frame ``payload`` as one message with one frame."""
    return HEADER.pack(call_id, 1) + FRAME_LENGTH.pack(len(payload)) + payload
