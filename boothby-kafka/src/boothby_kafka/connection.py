"""Client construction, connection retries and the broker monitor, shared by both sides of the transport."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Awaitable, Callable, Coroutine, Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, KafkaTimeoutError
from boothby.errors import TransportError

from .health import BrokerMonitor
from .producer import ReplaceableProducer
from .settings import TransportSettings
from .topics import TopicSpec, describe_error, request_topic

logger = logging.getLogger(__name__)

CONNECT_DELAYS = (0.5, 1.0, 2.0, 4.0, 5.0)
"""Seconds between background connection attempts; the last value repeats."""

CLOSE_TIMEOUT = 10.0
"""Seconds each client may take to close before it is abandoned."""


class Connection:
    """The clients of one side of the transport in one process, and the loop that connects them."""

    role = ""

    def __init__(self, options: TransportSettings) -> None:
        self.options = options
        self.servers = options.connection.servers_text
        self.admin: AIOKafkaAdminClient | None = None
        self.producer: ReplaceableProducer | None = None
        self.monitor: BrokerMonitor | None = None
        self.ready = asyncio.Event()
        self.closing = False
        self._background: set[asyncio.Task[None]] = set()

    @property
    def label(self) -> str:
        return f"{self.role} pid {os.getpid()}"

    def client_id(self) -> str:
        return f"boothby-{self.role}-{os.getpid()}"

    async def connect(self) -> None:
        """Create this side's clients, topics and tasks; raise ``KafkaError`` or ``OSError`` on failure."""
        raise NotImplementedError

    async def start(self) -> None:
        """Connect once; when the cluster cannot be reached, keep trying in the background and return.

        Raises ``TransportError`` for failures that retrying cannot fix, such as a replication
        factor larger than the cluster or a denied topic creation.
        """
        try:
            await self.connect()
        except KafkaError as error:
            if not (error.retriable or isinstance(error, KafkaTimeoutError)):
                raise TransportError(
                    f"kafka transport: setting up the {self.role} at {self.servers} failed: {describe_error(error)}",
                    backend="kafka",
                ) from error
            self._connect_later(error)
        except (OSError, asyncio.TimeoutError) as error:
            self._connect_later(error)

    def _connect_later(self, error: BaseException) -> None:
        logger.warning("kafka transport: %s cannot reach Kafka at %s (%s); connecting in the background",
                       self.label, self.servers, describe_error(error))
        self.spawn(self._connect_until_ready(), "connect")

    async def _connect_until_ready(self) -> None:
        attempt = 0
        while not self.closing:
            await asyncio.sleep(CONNECT_DELAYS[min(attempt, len(CONNECT_DELAYS) - 1)])
            attempt += 1
            try:
                await self.connect()
            except (KafkaError, OSError, asyncio.TimeoutError) as error:
                logger.warning("kafka transport: %s: connect attempt %d to %s failed: %s",
                               self.label, attempt, self.servers, describe_error(error))
                continue
            logger.warning("kafka transport: %s: connected to %s after %d attempts", self.label, self.servers, attempt)
            return

    def spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``coroutine`` as a task that ``close`` cancels."""
        task = asyncio.create_task(coroutine, name=f"kafka-{name}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def request_topics(self, functions: Sequence[str]) -> dict[str, TopicSpec]:
        retention = str(self.options.request_retention_ms)
        configs = {
            "retention.ms": retention,
            "segment.ms": retention,
            "max.message.bytes": str(self.options.max_message_bytes),
        }
        return {
            request_topic(self.options.topic_prefix, function):
                TopicSpec(self.options.partitions, self.options.replication_factor, configs)
            for function in functions
        }

    def new_admin(self, client_options: dict[str, Any]) -> AIOKafkaAdminClient:
        return AIOKafkaAdminClient(client_id=self.client_id(), request_timeout_ms=self.options.request_timeout_ms,
                                   **client_options)

    def new_producer(self, client_options: dict[str, Any]) -> ReplaceableProducer:
        acks = self.options.acks

        def create() -> AIOKafkaProducer:
            return AIOKafkaProducer(
                client_id=self.client_id(),
                acks=acks,
                # Idempotence makes the broker drop a batch that the producer retries after a lost
                # acknowledgement, which would otherwise run an invocation twice. It needs acks="all".
                enable_idempotence=acks == "all",
                linger_ms=self.options.linger_ms,
                request_timeout_ms=self.options.request_timeout_ms,
                max_request_size=self.options.max_message_bytes,
                **client_options,
            )

        return ReplaceableProducer(create, f"transport {self.label}")

    def start_monitor(self, admin: AIOKafkaAdminClient, on_lost: Callable[[str], None] | None = None,
                      on_restored: Callable[[], None] | None = None) -> None:
        self.monitor = BrokerMonitor(
            self.label, self.servers,
            # A metadata request for no topics: cheap, and it never auto-creates a topic.
            probe=lambda: admin.describe_topics([]),
            interval=self.options.probe_interval_ms / 1000,
            timeout=self.options.probe_timeout_ms / 1000,
            on_lost=on_lost,
            on_restored=on_restored,
        )
        self.monitor.start()

    def probe_soon(self) -> None:
        if self.monitor is not None:
            self.monitor.probe_soon()

    async def close(self) -> None:
        """Cancel background tasks and stop the monitor, the producer and the admin client."""
        self.closing = True
        for task in list(self._background):
            task.cancel()
        if self.monitor is not None:
            await self.monitor.stop()
        await close_quietly(self.producer.stop() if self.producer else None)
        await close_quietly(self.admin.close() if self.admin else None)


def discard_outcome(future: asyncio.Future[Any]) -> None:
    """Retrieve the outcome of a send that no caller awaits any more, so that asyncio does not log it as lost."""
    if not future.cancelled():
        future.exception()


async def close_quietly(*closers: Awaitable[Any] | None) -> None:
    """Await each closer for at most ``CLOSE_TIMEOUT`` seconds, logging failures; for paths that must not raise."""
    for closer in closers:
        if closer is None:
            continue
        try:
            await asyncio.wait_for(closer, CLOSE_TIMEOUT)
        except (KafkaError, OSError, asyncio.TimeoutError) as error:
            logger.warning("kafka transport: closing a Kafka client failed: %s", describe_error(error))
