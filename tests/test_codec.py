"""Avro single-object encoding of invocations and results."""

from __future__ import annotations

import pytest

from boothby.codec import MARKER, crc64_avro, invocation_schema, result_schema
from boothby.errors import CodecError


def invocation(**overrides):
    record = {
        "id": "r1", "function": "f", "deadline_ms": 2_000_000_000_000, "received_ms": 1_999_999_999_000,
        "reply_to": "embedded:1", "method": "POST", "path": "/", "raw_path": "/f", "query_string": "a=1&a=2",
        "query": [{"name": "a", "value": "1"}, {"name": "a", "value": "2"}],
        "headers": [{"name": "x", "value": "1"}, {"name": "x", "value": "2"}],
        "body": b"\x00\xff", "source_ip": "127.0.0.1", "protocol": "HTTP/1.1",
    }
    record.update(overrides)
    return record


def test_crc64_matches_specification_vector():
    # The Avro specification's fingerprint of the schema "null" (its canonical form is "null").
    assert crc64_avro(b'"null"') == 0x63DD24E7CC258F8A


def test_round_trip_keeps_repeated_pairs_and_bytes():
    schema = invocation_schema()
    message = schema.encode(invocation())
    assert message.startswith(MARKER + schema.fingerprint.to_bytes(8, "little"))
    decoded = schema.decode(message)
    assert decoded["query"] == [{"name": "a", "value": "1"}, {"name": "a", "value": "2"}]
    assert decoded["body"] == b"\x00\xff"


def test_no_body_and_empty_body_stay_distinct():
    schema = invocation_schema()
    assert schema.decode(schema.encode(invocation(body=None)))["body"] is None
    assert schema.decode(schema.encode(invocation(body=b"")))["body"] == b""


def test_unknown_fingerprint_rejected_with_both_values():
    message = result_schema().encode({"id": "r1", "status": 200, "headers": [], "body": None, "error": None})
    with pytest.raises(CodecError, match=r"unknown schema fingerprint [0-9a-f]{16}; this reader expects Invocation"):
        invocation_schema().decode(message)


def test_missing_marker_rejected():
    with pytest.raises(CodecError, match="not an Avro single-object message"):
        invocation_schema().decode(b"{}")


def test_truncated_message_rejected():
    message = invocation_schema().encode(invocation())
    with pytest.raises(CodecError, match="corrupt Invocation message"):
        invocation_schema().decode(message[:20])


def test_invocation_head_matches_full_decode():
    from boothby.codec import decode_invocation_head

    message = invocation_schema().encode(invocation(id="é-1", reply_to="redis:grappler-7", deadline_ms=2**40))
    head = decode_invocation_head(message)
    assert head == ("é-1", "f", 2**40, "redis:grappler-7")


def test_invocation_head_rejects_other_schema():
    from boothby.codec import decode_invocation_head

    message = result_schema().encode({"id": "r1", "status": 200, "headers": [], "body": None, "error": None})
    with pytest.raises(CodecError, match="unknown schema fingerprint"):
        decode_invocation_head(message)
