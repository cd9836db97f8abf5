"""Build the invocations and results that conformance tests send through a plugin."""

from __future__ import annotations

import time
import uuid
from typing import Any, Sequence

from ..codec import invocation_schema, result_schema


def unique_name(prefix: str = "cf") -> str:
    """Return a function name no other test run uses, so leftovers on a shared broker never mix in."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def new_request_id() -> str:
    return uuid.uuid4().hex


def invocation_record(function: str, *, request_id: str | None = None, reply_to: str = "conformance",
                      body: bytes | None = None, deadline: float | None = None,
                      query: Sequence[tuple[str, str]] = (), headers: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    """Return an ``Invocation`` record for ``function``; ``deadline`` is absolute ``time.time()`` seconds."""
    now = time.time()
    query_string = "&".join(f"{name}={value}" for name, value in query)
    return {
        "id": request_id or new_request_id(),
        "function": function,
        "deadline_ms": int((now + 30.0 if deadline is None else deadline) * 1000),
        "received_ms": int(now * 1000),
        "reply_to": reply_to,
        "method": "GET" if body is None else "POST",
        "path": "/",
        "raw_path": f"/{function}",
        "query_string": query_string,
        "query": [{"name": name, "value": value} for name, value in query],
        "headers": [{"name": name, "value": value} for name, value in headers],
        "body": body,
        "source_ip": "127.0.0.1",
        "protocol": "HTTP/1.1",
    }


def encode_invocation(record: dict[str, Any]) -> bytes:
    """Encode an ``Invocation`` as the grappler publishes it: single-object header, then Avro binary."""
    return invocation_schema().encode(record)


def encode_invocation_bare(record: dict[str, Any]) -> bytes:
    """Encode an ``Invocation`` as the pool sends it to a worker: Avro binary without the header."""
    return invocation_schema().encode_bare(record)


def encode_result(request_id: str, body: bytes | None, status: int = 200) -> bytes:
    """Encode a ``Result`` as the deflector publishes it to a reply address."""
    return result_schema().encode({"id": request_id, "status": status, "headers": [], "body": body, "error": None})


def decode_result(payload: bytes) -> dict[str, Any]:
    return result_schema().decode(payload)


def decode_invocation(payload: bytes) -> dict[str, Any]:
    return invocation_schema().decode(payload)
