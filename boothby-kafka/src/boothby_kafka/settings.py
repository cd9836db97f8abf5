"""Validate the ``[transport.kafka]`` and ``[log_sink.kafka]`` tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from aiokafka import codec as kafka_codec
from boothby.config import Config
from boothby.errors import ConfigError

from .security import CONNECTION_KEYS, ConnectionSettings, connection_settings
from .validation import SettingsChecker

COMPRESSION_TYPES = ("none", "gzip", "snappy", "lz4", "zstd")
_COMPRESSION_AVAILABLE = {
    "none": lambda: True,
    "gzip": kafka_codec.has_gzip,
    "snappy": kafka_codec.has_snappy,
    "lz4": kafka_codec.has_lz4,
    "zstd": kafka_codec.has_zstd,
}
_COMPRESSION_PACKAGES = {"snappy": "cramjam", "lz4": "cramjam", "zstd": "cramjam"}

MAX_TOPIC_LENGTH = 249
"""Kafka rejects topic names longer than this."""

MAX_PREFIX_LENGTH = 100
"""Keeps ``PREFIX.replies.HOST.PID.TIME.RANDOM`` within ``MAX_TOPIC_LENGTH`` with room for a long host name."""

TRANSPORT_KEYS = CONNECTION_KEYS | {
    "topic_prefix", "partitions", "replication_factor", "acks", "linger_ms", "fetch_max_wait_ms",
    "request_timeout_ms", "commit_timeout_ms", "session_timeout_ms", "heartbeat_interval_ms",
    "max_poll_interval_ms", "probe_interval_ms", "probe_timeout_ms", "request_retention_ms",
    "reply_retention_ms", "reply_sweep_interval_ms", "max_message_bytes",
}

LOG_SINK_KEYS = CONNECTION_KEYS | {
    "topic", "partitions", "replication_factor", "acks", "linger_ms", "compression_type", "write_timeout_ms",
    "retention_ms",
}

MAX_POLL_INTERVAL_FLOOR_MS = 300_000
"""aiokafka's default ``max_poll_interval_ms``; the transport never defaults to less."""

MAX_POLL_INTERVAL_SLACK_MS = 30_000
"""Added to the computed minimum when ``max_poll_interval_ms`` is not set."""


@dataclass(frozen=True)
class TransportSettings:
    """The validated ``[transport.kafka]`` table."""

    connection: ConnectionSettings
    topic_prefix: str
    partitions: int
    replication_factor: int | None
    acks: str | int
    linger_ms: int
    fetch_max_wait_ms: int
    request_timeout_ms: int
    commit_timeout_ms: int
    session_timeout_ms: int
    heartbeat_interval_ms: int
    max_poll_interval_ms: int
    probe_interval_ms: int
    probe_timeout_ms: int
    request_retention_ms: int
    reply_retention_ms: int
    reply_sweep_interval_ms: int
    max_message_bytes: int


def min_poll_interval_ms(config: Config, commit_timeout_ms: int, request_timeout_ms: int) -> int:
    """Return the shortest ``max_poll_interval_ms`` that a deflector with these functions can keep.

    A deflector fetches invocations only while a worker slot is free. With every slot busy, the
    next fetch comes after the longest function timeout, plus the offset commit that precedes a
    run and the publish of the result, each bounded by its own timeout.
    """
    return int(config.max_timeout * 1000) + commit_timeout_ms + request_timeout_ms


def transport_settings(data: Mapping[str, Any], config: Config) -> TransportSettings:
    """Validate ``[transport.kafka]``; raise ``ConfigError`` listing every problem."""
    checker = SettingsChecker(data, "transport.kafka", TRANSPORT_KEYS)
    connection = connection_settings(checker)

    request_timeout_ms = checker.integer("request_timeout_ms", 5_000, 100)
    commit_timeout_ms = checker.integer("commit_timeout_ms", 5_000, 100)
    session_timeout_ms = checker.integer("session_timeout_ms", 10_000, 1_000)
    heartbeat_interval_ms = checker.integer("heartbeat_interval_ms", 3_000, 100)
    needed_poll_ms = min_poll_interval_ms(config, commit_timeout_ms, request_timeout_ms)
    default_poll_ms = max(MAX_POLL_INTERVAL_FLOOR_MS, needed_poll_ms + MAX_POLL_INTERVAL_SLACK_MS)
    max_body = config.grappler.max_body_size

    settings = TransportSettings(
        connection=connection,
        topic_prefix=checker.topic_name("topic_prefix", "boothby", MAX_PREFIX_LENGTH),
        partitions=checker.integer("partitions", 8, 1, 10_000),
        replication_factor=checker.optional_integer("replication_factor", 1),
        acks=checker.acks("acks", "all"),
        linger_ms=checker.integer("linger_ms", 0, 0, 60_000),
        fetch_max_wait_ms=checker.integer("fetch_max_wait_ms", 100, 0, 60_000),
        request_timeout_ms=request_timeout_ms,
        commit_timeout_ms=commit_timeout_ms,
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=heartbeat_interval_ms,
        max_poll_interval_ms=checker.integer("max_poll_interval_ms", default_poll_ms, 1_000),
        probe_interval_ms=checker.integer("probe_interval_ms", 1_000, 50),
        probe_timeout_ms=checker.integer("probe_timeout_ms", 3_000, 50),
        request_retention_ms=checker.integer("request_retention_ms", 3_600_000, 60_000),
        reply_retention_ms=checker.integer("reply_retention_ms", 3_600_000, 60_000),
        reply_sweep_interval_ms=checker.integer("reply_sweep_interval_ms", 300_000, 1_000),
        max_message_bytes=checker.integer("max_message_bytes", max(1_048_576, max_body + 1_048_576), 65_536),
    )
    _check_consumer_timeouts(checker, settings, config, needed_poll_ms)

    if checker.problems:
        raise ConfigError(checker.problems, str(config.path) if config.path else None)
    return settings


def _check_consumer_timeouts(checker: SettingsChecker, settings: TransportSettings, config: Config,
                             needed_poll_ms: int) -> None:
    prefix = checker.prefix
    if settings.heartbeat_interval_ms >= settings.session_timeout_ms:
        checker.problems.append(
            f"{prefix}.heartbeat_interval_ms = {settings.heartbeat_interval_ms} must be lower than "
            f"{prefix}.session_timeout_ms = {settings.session_timeout_ms}; a third of it is usual"
        )
    if settings.max_poll_interval_ms < needed_poll_ms:
        longest = max(config.functions.values(), key=lambda function: function.timeout, default=None)
        function_note = f" (function {longest.name!r})" if longest is not None else ""
        checker.problems.append(
            f"{prefix}.max_poll_interval_ms = {settings.max_poll_interval_ms} is shorter than the longest function "
            f"timeout of {config.max_timeout:g}s{function_note} plus commit_timeout_ms = "
            f"{settings.commit_timeout_ms} and "
            f"request_timeout_ms = {settings.request_timeout_ms}, {needed_poll_ms} ms in all. A deflector whose "
            f"worker slots are all busy does not poll for that long, and Kafka then removes it from its consumer "
            f"group. Set max_poll_interval_ms to at least {needed_poll_ms}, or remove it to use the default"
        )


@dataclass(frozen=True)
class LogSinkSettings:
    """The validated ``[log_sink.kafka]`` table."""

    connection: ConnectionSettings
    topic: str
    partitions: int
    replication_factor: int | None
    acks: str | int
    linger_ms: int
    compression_type: str
    write_timeout_ms: int
    retention_ms: int | None


def log_sink_settings(data: Mapping[str, Any]) -> LogSinkSettings:
    """Validate ``[log_sink.kafka]``; raise ``ConfigError`` listing every problem."""
    checker = SettingsChecker(data, "log_sink.kafka", LOG_SINK_KEYS)
    settings = LogSinkSettings(
        connection=connection_settings(checker),
        topic=checker.topic_name("topic", "boothby-logs", MAX_TOPIC_LENGTH),
        partitions=checker.integer("partitions", 1, 1, 10_000),
        replication_factor=checker.optional_integer("replication_factor", 1),
        acks=checker.acks("acks", "all"),
        linger_ms=checker.integer("linger_ms", 20, 0, 60_000),
        compression_type=checker.choice("compression_type", "none", COMPRESSION_TYPES).lower(),
        write_timeout_ms=checker.integer("write_timeout_ms", 10_000, 100),
        retention_ms=checker.optional_integer("retention_ms", 60_000),
    )
    compression = settings.compression_type
    if not _COMPRESSION_AVAILABLE[compression]():
        checker.problems.append(
            f"log_sink.kafka.compression_type = {compression!r} needs the Python package "
            f"{_COMPRESSION_PACKAGES.get(compression, compression)}, which is not installed; install it or choose gzip"
        )
    if checker.problems:
        raise ConfigError(checker.problems)
    return settings
