"""The kafka log sink: one Kafka record per console call, keyed by function name, Avro single-object encoded."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Mapping

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, KafkaTimeoutError, MessageSizeTooLargeError
from boothby.codec import log_record_schema
from boothby.logsink import FunctionLog, LogSink

from .producer import ReplaceableProducer
from .settings import LogSinkSettings, log_sink_settings
from .topics import TopicAdmin, TopicSpec, describe_error

logger = logging.getLogger(__name__)

CONNECT_RETRY_DELAY = 1.0
"""Seconds between connection attempts of a sink that could not connect at start."""


class KafkaLogSink(LogSink):
    """Ships function log records to one Kafka topic.

    ``write`` gives up after ``write_timeout_ms`` and raises, so a dead cluster costs the
    deflector's log shipper one batch per timeout and never blocks it for longer. The shipper
    counts that batch as failed and keeps buffering later records up to ``[deflector] log_buffer``.
    The producer reconnects by itself, so shipping resumes when the cluster responds again.
    """

    name = "kafka"

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        self.options: LogSinkSettings = log_sink_settings(settings)
        self.servers = self.options.connection.servers_text
        self.topic = self.options.topic
        self.timeout = self.options.write_timeout_ms / 1000
        self.schema = log_record_schema()
        self.producer: ReplaceableProducer | None = None
        self.too_large = 0

    async def start(self) -> None:
        """Create the topic if needed and connect; when Kafka is unreachable, ``write`` connects later."""
        try:
            await asyncio.wait_for(self._connect(), self.timeout)
        except (KafkaError, OSError, asyncio.TimeoutError) as error:
            logger.warning("kafka log sink: Kafka at %s is not reachable at start (%s); records wait in the "
                           "deflector's log buffer and each write tries to connect again", self.servers,
                           _reason(error, self.timeout))

    async def _connect(self) -> None:
        client_options = self.options.connection.client_options()
        client_id = f"boothby-logs-{os.getpid()}"
        await self._ensure_topic(client_options, client_id)

        def create() -> AIOKafkaProducer:
            return AIOKafkaProducer(
                client_id=client_id,
                acks=self.options.acks,
                enable_idempotence=self.options.acks == "all",
                linger_ms=self.options.linger_ms,
                compression_type=None if self.options.compression_type == "none" else self.options.compression_type,
                # Batches the broker has not acknowledged by then fail inside the producer too, so a
                # batch counted as failed is not delivered later behind the shipper's back.
                request_timeout_ms=self.options.write_timeout_ms,
                **client_options,
            )

        producer = ReplaceableProducer(create, "log sink")
        await producer.start()
        self.producer = producer
        logger.info("kafka log sink: connected to %s; shipping function logs to topic %s", self.servers, self.topic)

    async def _connect_until_done(self) -> None:
        """Try to connect every ``CONNECT_RETRY_DELAY`` seconds; ``write``'s time bound ends the attempts."""
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._connect()
                return
            except (KafkaError, OSError) as error:
                logger.warning("kafka log sink: connect attempt %d to %s failed: %s", attempt, self.servers,
                               describe_error(error))
            await asyncio.sleep(CONNECT_RETRY_DELAY)

    async def _ensure_topic(self, client_options: dict[str, Any], client_id: str) -> None:
        admin = AIOKafkaAdminClient(client_id=client_id, request_timeout_ms=self.options.write_timeout_ms,
                                    **client_options)
        try:
            await admin.start()
            configs = {"retention.ms": str(self.options.retention_ms)} if self.options.retention_ms else {}
            spec = TopicSpec(self.options.partitions, self.options.replication_factor, configs)
            try:
                await TopicAdmin(admin, self.options.write_timeout_ms).ensure({self.topic: spec})
            except KafkaError as error:
                if error.retriable:
                    raise
                # Without the right to create topics the topic may still exist or be created on
                # first write; the producer reports it if not.
                logger.warning("kafka log sink: creating topic %s failed: %s; shipping to it anyway",
                               self.topic, describe_error(error))
        finally:
            await admin.close()

    async def write(self, records: list[FunctionLog]) -> None:
        try:
            await asyncio.wait_for(self._write(records), self.timeout)
        except asyncio.TimeoutError:
            raise KafkaTimeoutError(
                f"kafka log sink: delivering {len(records)} records to topic {self.topic} at {self.servers} timed "
                f"out after write_timeout_ms = {self.options.write_timeout_ms}"
            ) from None

    async def _write(self, records: list[FunctionLog]) -> None:
        if self.producer is None:
            await self._connect_until_done()
        producer = self.producer
        assert producer is not None
        used = producer.producer
        acknowledgements = []
        for record in records:
            value = self.schema.encode({
                "function": record.function,
                "request_id": record.request_id,
                "timestamp_ms": float(record.timestamp_ms),
                "level": record.level,
                "message": record.message,
            })
            try:
                acknowledgements.append(await producer.send(
                    self.topic, value, key=record.function.encode("utf-8"), timestamp_ms=int(record.timestamp_ms),
                ))
            except MessageSizeTooLargeError:
                self.too_large += 1
                logger.warning("kafka log sink: a log record of request %s is %d bytes, more than the producer's "
                               "limit; dropped (%d such records so far)", record.request_id, len(value), self.too_large)
        for acknowledgement in acknowledgements:
            # Fetch each outcome even when write() gives up first, so asyncio does not log it as lost.
            acknowledgement.add_done_callback(_discard_outcome)
        if not acknowledgements:
            return
        await asyncio.wait(acknowledgements)
        for acknowledgement in acknowledgements:
            error = acknowledgement.exception()
            if error is not None:
                # The batch is lost either way; a replaced producer serves the next write.
                await producer.recover(error, used)
                raise error

    async def close(self) -> None:
        if self.producer is None:
            return
        await self.producer.stop()
        if self.too_large:
            logger.warning("kafka log sink: %d log records were too large for Kafka and dropped", self.too_large)


def _discard_outcome(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _reason(error: BaseException, timeout: float) -> str:
    if isinstance(error, asyncio.TimeoutError):
        return f"no answer within {timeout:g}s"
    return describe_error(error)
