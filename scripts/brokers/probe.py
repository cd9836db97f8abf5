#!/usr/bin/env python3
"""Check that a broker responds to a real client request, using only the standard library.

  probe.py amqp [--host H] [--port P] [--user U] [--password W] [--vhost V]
      Open an AMQP 0-9-1 connection with PLAIN authentication, open the vhost
      and close the connection again.
  probe.py kafka [--host H] [--port P]
      Send a Kafka Metadata request (version 4) and require at least one broker
      in the response.

Exit status 0 means the broker responded as expected. Exit status 1 means it
did not, and the reason is printed to stderr. The broker scripts in this folder call it while they wait for a start.
"""

import argparse
import socket
import struct
import sys

AMQP_PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
AMQP_FRAME_METHOD = 1
AMQP_FRAME_HEARTBEAT = 8
AMQP_FRAME_END = 0xCE
AMQP_CONNECTION_CLASS = 10
AMQP_START, AMQP_START_OK = 10, 11
AMQP_TUNE, AMQP_TUNE_OK = 30, 31
AMQP_OPEN, AMQP_OPEN_OK = 40, 41
AMQP_CLOSE, AMQP_CLOSE_OK = 50, 51

KAFKA_METADATA_API_KEY = 3
# Metadata v4 predates the flexible (tagged-field) encoding of v9+, so it is
# simple to write by hand. Kafka 4.4.0 accepts Metadata versions 0 to 13
# (common/message/MetadataRequest.json in kafka-clients-4.4.0.jar).
KAFKA_METADATA_VERSION = 4


class ProbeError(Exception):
    """The broker's response was missing or not what a working broker sends."""


def read_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ProbeError(f"connection closed by the broker after {len(data)} of {size} expected bytes")
        data.extend(chunk)
    return bytes(data)


def short_string(value: str) -> bytes:
    encoded = value.encode()
    return struct.pack(">B", len(encoded)) + encoded


def long_string(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def send_amqp_method(sock: socket.socket, method_id: int, arguments: bytes) -> None:
    payload = struct.pack(">HH", AMQP_CONNECTION_CLASS, method_id) + arguments
    frame = struct.pack(">BHI", AMQP_FRAME_METHOD, 0, len(payload)) + payload + bytes([AMQP_FRAME_END])
    sock.sendall(frame)


def read_amqp_method(sock: socket.socket) -> tuple[int, int, bytes]:
    """Read frames until a method frame arrives and return (class, method, arguments)."""
    while True:
        frame_type, _channel, size = struct.unpack(">BHI", read_exactly(sock, 7))
        payload = read_exactly(sock, size)
        if read_exactly(sock, 1)[0] != AMQP_FRAME_END:
            raise ProbeError("invalid AMQP frame end byte")
        if frame_type == AMQP_FRAME_HEARTBEAT:
            continue
        if frame_type != AMQP_FRAME_METHOD:
            raise ProbeError(f"expected an AMQP method frame, got frame type {frame_type}")
        class_id, method_id = struct.unpack(">HH", payload[:4])
        return class_id, method_id, payload[4:]


def expect_amqp_method(sock: socket.socket, expected_method: int) -> bytes:
    class_id, method_id, arguments = read_amqp_method(sock)
    if (class_id, method_id) == (AMQP_CONNECTION_CLASS, AMQP_CLOSE):
        reply_code = struct.unpack(">H", arguments[:2])[0]
        text_length = arguments[2]
        reply_text = arguments[3 : 3 + text_length].decode(errors="replace")
        raise ProbeError(f"the broker closed the connection: {reply_code} {reply_text}")
    if (class_id, method_id) != (AMQP_CONNECTION_CLASS, expected_method):
        raise ProbeError(f"expected AMQP method 10.{expected_method}, got {class_id}.{method_id}")
    return arguments


def probe_amqp(args: argparse.Namespace) -> str:
    with socket.create_connection((args.host, args.port), timeout=args.timeout) as sock:
        sock.sendall(AMQP_PROTOCOL_HEADER)
        expect_amqp_method(sock, AMQP_START)

        # The capability makes RabbitMQ send Connection.Close with the reason
        # on failed authentication, instead of only closing the socket.
        capabilities = short_string("authentication_failure_close") + b"t\x01"
        client_properties = (
            short_string("product") + b"S" + long_string(b"boothby-broker-probe")
            + short_string("capabilities") + b"F" + long_string(capabilities)
        )
        credentials = b"\x00" + args.user.encode() + b"\x00" + args.password.encode()
        send_amqp_method(
            sock,
            AMQP_START_OK,
            long_string(client_properties) + short_string("PLAIN") + long_string(credentials) + short_string("en_US"),
        )

        channel_max, frame_max, _heartbeat = struct.unpack(">HIH", expect_amqp_method(sock, AMQP_TUNE)[:8])
        send_amqp_method(sock, AMQP_TUNE_OK, struct.pack(">HIH", channel_max, frame_max, 0))

        send_amqp_method(sock, AMQP_OPEN, short_string(args.vhost) + short_string("") + b"\x00")
        expect_amqp_method(sock, AMQP_OPEN_OK)

        send_amqp_method(sock, AMQP_CLOSE, struct.pack(">H", 200) + short_string("probe done") + struct.pack(">HH", 0, 0))
        expect_amqp_method(sock, AMQP_CLOSE_OK)
    return f"AMQP login as {args.user!r} to vhost {args.vhost!r} succeeded"


def kafka_string(value: str) -> bytes:
    encoded = value.encode()
    return struct.pack(">h", len(encoded)) + encoded


def read_kafka_string(data: bytes, offset: int) -> tuple[str | None, int]:
    (length,) = struct.unpack_from(">h", data, offset)
    offset += 2
    if length < 0:
        return None, offset
    return data[offset : offset + length].decode(), offset + length


def probe_kafka(args: argparse.Namespace) -> str:
    correlation_id = 1
    # Request header v1, then Metadata v4: an empty topic array (no topic
    # metadata wanted) and allow_auto_topic_creation = false.
    request = (
        struct.pack(">hhi", KAFKA_METADATA_API_KEY, KAFKA_METADATA_VERSION, correlation_id)
        + kafka_string("boothby-broker-probe")
        + struct.pack(">i", 0)
        + b"\x00"
    )
    with socket.create_connection((args.host, args.port), timeout=args.timeout) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", read_exactly(sock, 4))
        response = read_exactly(sock, size)

    received_id, _throttle_ms, broker_count = struct.unpack_from(">iii", response, 0)
    if received_id != correlation_id:
        raise ProbeError(f"Kafka response has correlation id {received_id}, expected {correlation_id}")
    if broker_count < 1:
        raise ProbeError("Kafka Metadata response lists no broker yet")

    offset = 12
    brokers = []
    for _ in range(broker_count):
        (node_id,) = struct.unpack_from(">i", response, offset)
        host, offset = read_kafka_string(response, offset + 4)
        (port,) = struct.unpack_from(">i", response, offset)
        _rack, offset = read_kafka_string(response, offset + 4)
        brokers.append(f"{node_id}@{host}:{port}")
    cluster_id, offset = read_kafka_string(response, offset)
    (controller_id,) = struct.unpack_from(">i", response, offset)
    return f"Kafka cluster {cluster_id}: brokers {', '.join(brokers)}, controller {controller_id}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=3.0, help="socket timeout in seconds (default 3)")
    parser.add_argument("--quiet", action="store_true", help="print nothing on success")
    commands = parser.add_subparsers(dest="command", required=True)

    amqp = commands.add_parser("amqp", help="open and close an AMQP 0-9-1 connection")
    amqp.add_argument("--host", default="127.0.0.1")
    amqp.add_argument("--port", type=int, default=5672)
    amqp.add_argument("--user", default="guest")
    amqp.add_argument("--password", default="guest")
    amqp.add_argument("--vhost", default="/")

    kafka = commands.add_parser("kafka", help="send a Kafka Metadata request")
    kafka.add_argument("--host", default="127.0.0.1")
    kafka.add_argument("--port", type=int, default=9092)

    args = parser.parse_args()
    probe = probe_amqp if args.command == "amqp" else probe_kafka
    try:
        result = probe(args)
    except (OSError, ProbeError, struct.error) as error:
        print(f"probe.py {args.command}: {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
