"""Avro schemas and the single-object encoding of invocations, results and log records."""

from __future__ import annotations

import io
import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import fastavro
from fastavro.schema import to_parsing_canonical_form

from .errors import CodecError

MARKER = b"\xc3\x01"
"""The two bytes that start every Avro single-object encoded message."""

HEADER_SIZE = len(MARKER) + 8

_CRC64_EMPTY = 0xC15D213AA4D7A795


def _crc64_table() -> list[int]:
    table = []
    for byte in range(256):
        fingerprint = byte
        for _ in range(8):
            fingerprint = (fingerprint >> 1) ^ (_CRC64_EMPTY & -(fingerprint & 1))
        table.append(fingerprint)
    return table


_CRC64_TABLE = _crc64_table()


def crc64_avro(data: bytes) -> int:
    """Compute the CRC-64-AVRO (Rabin) fingerprint defined by the Avro specification."""
    fingerprint = _CRC64_EMPTY
    for byte in data:
        fingerprint = (fingerprint >> 8) ^ _CRC64_TABLE[(fingerprint ^ byte) & 0xFF]
    return fingerprint


def schema_dir() -> Path:
    """Return the folder holding the ``.avsc`` and ``.avpr`` files shipped with boothby-core."""
    return Path(str(resources.files("boothby") / "schemas"))


def load_schema_json(name: str) -> dict[str, Any]:
    """Load one schema file, for example ``invocation.avsc``, as parsed JSON."""
    return json.loads((schema_dir() / name).read_text(encoding="utf-8"))


def worker_protocol() -> dict[str, Any]:
    """Build the worker RPC protocol: ``worker.avpr`` with the invocation and worker result types filled in."""
    protocol = load_schema_json("worker.avpr")
    protocol["types"] = [load_schema_json("invocation.avsc"), load_schema_json("worker-result.avsc")]
    return protocol


class Schema:
    """A parsed record schema with its single-object header, able to encode and decode messages."""

    def __init__(self, schema_json: dict[str, Any], named_schemas: dict[str, Any] | None = None) -> None:
        self.name = schema_json["name"]
        self.parsed = fastavro.parse_schema(schema_json, named_schemas=named_schemas)
        canonical = to_parsing_canonical_form(self.parsed)
        self.fingerprint = crc64_avro(canonical.encode("utf-8"))
        self.header = MARKER + self.fingerprint.to_bytes(8, "little")

    def encode(self, record: dict[str, Any]) -> bytes:
        """Encode ``record`` with the single-object header in front."""
        buffer = io.BytesIO()
        buffer.write(self.header)
        fastavro.schemaless_writer(buffer, self.parsed, record)
        return buffer.getvalue()

    def encode_bare(self, record: dict[str, Any]) -> bytes:
        """Encode ``record`` as plain Avro binary, without a header."""
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, self.parsed, record)
        return buffer.getvalue()

    def decode(self, message: bytes) -> dict[str, Any]:
        """Decode a single-object encoded message written with this schema.

        Raises ``CodecError`` naming the fingerprint when another schema wrote the message.
        """
        self.check_header(message)
        return self.decode_bare(memoryview(message)[HEADER_SIZE:])

    def decode_bare(self, data: bytes | memoryview) -> dict[str, Any]:
        """Decode plain Avro binary written with this schema."""
        try:
            return fastavro.schemaless_reader(io.BytesIO(data), self.parsed, None)
        except (EOFError, ValueError, IndexError, UnicodeDecodeError, TypeError) as error:
            raise CodecError(f"corrupt {self.name} message: {error}") from error

    def check_header(self, message: bytes) -> None:
        """Raise ``CodecError`` unless ``message`` starts with this schema's single-object header."""
        if message[:HEADER_SIZE] == self.header:
            return

        if message[:2] != MARKER:
            raise CodecError(
                f"not an Avro single-object message: expected marker c301, got {bytes(message[:2]).hex() or 'nothing'}"
            )
        fingerprint = int.from_bytes(message[2:HEADER_SIZE], "little")
        raise CodecError(
            f"message written with unknown schema fingerprint {fingerprint:016x}; "
            f"this reader expects {self.name} with fingerprint {self.fingerprint:016x}. "
            "Run the same Boothby version on grappler and deflector."
        )


def decode_long(data: bytes | memoryview, position: int) -> tuple[int, int]:
    """Decode an Avro ``long`` (zig-zag varint) at ``position``; return it and the next position."""
    shift = 0
    result = 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
    return (result >> 1) ^ -(result & 1), position


def decode_string(data: bytes | memoryview, position: int, errors: str = "strict") -> tuple[str, int]:
    """Decode an Avro ``string`` at ``position``; return it and the next position.

    Raises ``CodecError`` when the string runs past the end of ``data``.
    """
    length, position = decode_long(data, position)
    end = position + length
    if length < 0 or end > len(data):
        raise CodecError("corrupt message: a string runs past the end")
    return bytes(data[position:end]).decode("utf-8", errors), end


class InvocationHead(NamedTuple):
    """The fields of an invocation the deflector needs before running it."""

    id: str
    function: str
    deadline_ms: int
    reply_to: str


def decode_invocation_head(message: bytes) -> InvocationHead:
    """Decode only the leading fields of a single-object encoded invocation, without the request itself.

    Relies on ``invocation.avsc`` starting with id, function, deadline_ms, received_ms and
    reply_to, in that order; the fingerprint check guarantees that schema wrote the message.
    """
    invocation_schema().check_header(message)
    try:
        request_id, position = decode_string(message, HEADER_SIZE)
        function, position = decode_string(message, position)
        deadline_ms, position = decode_long(message, position)
        _, position = decode_long(message, position)
        reply_to, _ = decode_string(message, position)
    except (IndexError, UnicodeDecodeError) as error:
        raise CodecError(f"corrupt Invocation message: {error}") from error
    return InvocationHead(request_id, function, deadline_ms, reply_to)


@lru_cache(maxsize=None)
def invocation_schema() -> Schema:
    """Return the schema of invocations on the queue."""
    return Schema(load_schema_json("invocation.avsc"))


@lru_cache(maxsize=None)
def result_schema() -> Schema:
    """Return the schema of results on the reply channel."""
    return Schema(load_schema_json("result.avsc"))


@lru_cache(maxsize=None)
def worker_result_schema() -> Schema:
    """Return the schema of what a worker returns over RPC (it refers to ``Pair`` from the invocation schema)."""
    named: dict[str, Any] = {}
    fastavro.parse_schema(load_schema_json("invocation.avsc"), named_schemas=named)
    return Schema(load_schema_json("worker-result.avsc"), named_schemas=named)


@lru_cache(maxsize=None)
def log_record_schema() -> Schema:
    """Return the schema of function log records, as log sinks may ship them."""
    return Schema(load_schema_json("log-record.avsc"))
