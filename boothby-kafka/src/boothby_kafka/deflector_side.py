"""The deflector side of the transport: consume the request topics in a shared group, publish results."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Sequence

from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from boothby.codec import result_schema
from boothby.config import FunctionConfig
from boothby.errors import TransportUnavailable

from .connection import Connection, close_quietly, discard_outcome
from .invocations import FunctionConsumer, KafkaDelivery
from .producer import ReplaceableProducer
from .settings import TransportSettings
from .topics import TopicAdmin, deflector_group, describe_error, request_topic

logger = logging.getLogger(__name__)


class DeflectorSide(Connection):
    """One deflector's consumers, one per function, and the producer of its results."""

    role = "deflector"

    def __init__(self, options: TransportSettings, functions: Sequence[str]) -> None:
        super().__init__(options)
        self.functions = list(functions)
        self.consumers: dict[str, FunctionConsumer] = {}

    async def connect(self) -> None:
        client_options = self.options.connection.client_options()
        admin = self.new_admin(client_options)
        producer: ReplaceableProducer | None = None
        consumers: dict[str, FunctionConsumer] = {}
        prefix = self.options.topic_prefix
        try:
            await admin.start()
            await TopicAdmin(admin, self.options.request_timeout_ms).ensure(self.request_topics(self.functions))
            producer = self.new_producer(client_options)
            await producer.start()
            for function in self.functions:
                consumer = FunctionConsumer(function, request_topic(prefix, function),
                                            deflector_group(prefix, function), self.options, client_options,
                                            self.client_id())
                consumers[function] = consumer
                await consumer.start()
        except BaseException:
            await close_quietly(*(consumer.consumer.stop() for consumer in consumers.values()),
                                producer.stop() if producer else None, admin.close())
            raise

        self.admin, self.producer, self.consumers = admin, producer, consumers
        self.start_monitor(admin)
        self.ready.set()
        logger.info("kafka transport: %s connected to %s; consuming %s", self.label, self.servers,
                    ", ".join(request_topic(prefix, function) for function in self.functions))

    async def receive(self, function: str, max_count: int) -> list[KafkaDelivery]:
        await self.ready.wait()
        try:
            return await self.consumers[function].fetch(max_count)
        except KafkaError as error:
            raise TransportUnavailable(
                f"fetching invocations of {function} from Kafka at {self.servers} failed: {describe_error(error)}",
                backend="kafka",
            ) from error

    async def reply(self, address: str, payload: bytes, request_id: str) -> None:
        if self.producer is None:
            raise TransportUnavailable(
                f"not connected to Kafka at {self.servers}; the result of request {request_id} is dropped",
                backend="kafka",
            )
        try:
            await self._send_reply(address, payload)
        except MessageSizeTooLargeError:
            logger.error("kafka transport: the result of request %s is %d bytes, more than max_message_bytes = %d; "
                         "sending a 502 instead", request_id, len(payload), self.options.max_message_bytes)
            await self._send_reply(address, self._too_large_result(request_id, len(payload)))

    async def _send_reply(self, address: str, payload: bytes) -> None:
        assert self.producer is not None
        timeout = self.options.request_timeout_ms / 1000 + 1
        for attempt in (1, 2):
            used = self.producer.producer
            try:
                acknowledged = await self.producer.send(address, payload)
                await asyncio.wait((acknowledged,), timeout=timeout)
                if not acknowledged.done():
                    acknowledged.add_done_callback(discard_outcome)
                    raise asyncio.TimeoutError()
                acknowledged.result()
                return
            except MessageSizeTooLargeError:
                raise
            except (KafkaError, OSError, asyncio.TimeoutError) as error:
                # A rejected producer state means the broker did not store the result, so a retry on a
                # new producer cannot deliver it twice.
                if attempt == 1 and await self.producer.recover(error, used):
                    continue
                self.probe_soon()
                if isinstance(error, asyncio.TimeoutError):
                    reason = "no acknowledgement in time"
                else:
                    reason = describe_error(error)
                raise TransportUnavailable(f"publishing to reply topic {address} failed: {reason}",
                                           backend="kafka") from error

    def _too_large_result(self, request_id: str, size: int) -> bytes:
        body = json.dumps({
            "error": "response too large",
            "message": f"the function's response is {size} bytes, more than the Kafka message limit of "
                       f"{self.options.max_message_bytes} bytes ([transport.kafka] max_message_bytes)",
            "requestId": request_id,
        }).encode("utf-8")
        return result_schema().encode({
            "id": request_id, "status": 502, "body": body, "error": "worker_error",
            "headers": [{"name": "content-type", "value": "application/json"}],
        })

    async def close(self) -> None:
        self.closing = True
        await close_quietly(*(consumer.stop() for consumer in self.consumers.values()))
        await super().close()


def warn_about_session_timeout(options: TransportSettings, functions: Sequence[FunctionConfig]) -> None:
    """Log the functions whose timeout is not longer than the consumer session timeout."""
    short = [f"{function.name} ({function.timeout:g}s)" for function in functions
             if function.timeout * 1000 <= options.session_timeout_ms]
    if short:
        logger.warning(
            "kafka transport: invocations waiting on a deflector that crashes move to another deflector only "
            "after session_timeout_ms = %d, so those of functions with a timeout no longer than that expire "
            "first: %s", options.session_timeout_ms, ", ".join(short),
        )
