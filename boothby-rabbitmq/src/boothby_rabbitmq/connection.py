"""One AMQP connection on the process's event loop that reconnects by itself after it is lost."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Any, Awaitable, Callable

import pika.exceptions
from pika.adapters.asyncio_connection import AsyncioConnection
from pika.adapters.utils import connection_workflow
from pika.channel import Channel

from boothby.errors import TransportError, TransportUnavailable

from .settings import RabbitMQSettings
from .streams import BridgedIOServices

logger = logging.getLogger(__name__)

RECONNECT_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0)
"""Seconds to wait before each reconnect attempt. The last value repeats until an attempt succeeds."""

SETUP_TIMEOUT = 20.0
"""Seconds one connection attempt may take, from the TCP connect to the last queue declared."""

CLOSE_TIMEOUT = 5.0
"""Seconds ``close`` waits for the broker to confirm that the connection is closed."""

CONNECT_ERRORS: tuple[type[BaseException], ...] = (
    pika.exceptions.AMQPError, connection_workflow.AMQPConnectorException, OSError, asyncio.TimeoutError,
    TransportError,
)
"""Exceptions of a failed connection attempt: the broker is down, rejected the connection, or closed a channel during set-up."""


PIKA_CONNECT_LOGGERS = (
    "pika.adapters.base_connection",
    "pika.adapters.utils.connection_workflow",
    "pika.adapters.utils.io_services_utils",
)
"""pika loggers that log each failed connection attempt at ERROR, in seven lines with pika 1.4.4."""


def connection_name(role: str) -> str:
    """Name a connection after its role, host and pid, as ``rabbitmqctl list_connections`` shows it."""
    return f"boothby {role} {socket.gethostname()} pid {os.getpid()}"


def quiet_pika_logging() -> None:
    """Keep pika's INFO messages and its per-attempt connection errors out of Boothby's logs.

    The transport logs each connection attempt and its outcome itself. Nothing changes when
    the ``pika`` logger's level is already set or when Boothby logs at DEBUG (``--log-level debug``).
    """
    pika_logger = logging.getLogger("pika")
    if pika_logger.level != logging.NOTSET or logging.getLogger().getEffectiveLevel() <= logging.DEBUG:
        return
    pika_logger.setLevel(logging.WARNING)
    for name in PIKA_CONNECT_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)


def root_cause(error: BaseException) -> BaseException:
    """Unwrap the layers pika puts around a failed connection attempt to reach the error that caused it."""
    seen = set()
    while id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, connection_workflow.AMQPConnectionWorkflowFailed) and error.exceptions:
            error = error.exceptions[-1]
        elif isinstance(error, connection_workflow.AMQPConnectorPhaseErrorBase) and error.exception is not None:
            error = error.exception
        elif (type(error) is pika.exceptions.AMQPConnectionError and error.args
              and isinstance(error.args[0], BaseException)):
            error = error.args[0]
    return error


def describe_error(error: BaseException | None) -> str:
    """Describe a pika connection or channel error in one line, without credentials."""
    if error is None:
        return "closed"
    error = root_cause(error)
    if isinstance(error, (pika.exceptions.ConnectionClosed, pika.exceptions.ChannelClosed)):
        return f"closed with {error.reply_code} {error.reply_text}"
    if isinstance(error, pika.exceptions.ProbableAuthenticationError):
        return "the broker rejected the username or password"
    if isinstance(error, pika.exceptions.ProbableAccessDeniedError):
        return "the broker denied access to the virtual host"
    if isinstance(error, pika.exceptions.StreamLostError):
        return "the TCP connection was lost"
    if isinstance(error, pika.exceptions.AMQPHeartbeatTimeout):
        return "no heartbeat from the broker in time"
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class BrokerConnection:
    """A pika ``AsyncioConnection`` that is opened, set up, and opened and set up again after every loss.

    ``on_connected(connection)`` runs after each successful open: it opens the channels and
    declares the queues, awaiting replies with ``call``. ``on_lost(reason)`` runs when a
    connection that had finished ``on_connected`` is lost. Every reconnect attempt and its
    outcome is logged.
    """

    def __init__(self, settings: RabbitMQSettings, role: str,
                 on_connected: Callable[[AsyncioConnection], Awaitable[None]],
                 on_lost: Callable[[str], None]) -> None:
        self.settings = settings
        self.role = role
        self.on_connected = on_connected
        self.on_lost = on_lost
        self.connection: AsyncioConnection | None = None
        self.blocked = False
        self._ready = asyncio.Event()
        self._established = False
        self._pending: set[asyncio.Future[Any]] = set()
        self._closing = False
        self._closed: asyncio.Future[None] | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        quiet_pika_logging()

    @property
    def ready(self) -> bool:
        """Whether the connection is open and ``on_connected`` has finished."""
        return self._ready.is_set()

    async def wait_ready(self) -> None:
        await self._ready.wait()

    async def start(self) -> None:
        """Connect and set up once. If the broker cannot be reached, keep trying in the background.

        Raises ``TransportUnavailable`` when the broker rejects the credentials or the virtual
        host, because retrying cannot fix that.
        """
        try:
            await self._connect()
        except CONNECT_ERRORS as error:
            if isinstance(root_cause(error), (pika.exceptions.ProbableAuthenticationError,
                                              pika.exceptions.ProbableAccessDeniedError)):
                raise TransportUnavailable(
                    f"rabbitmq transport: connecting to {self.settings.safe_url} failed: {describe_error(error)}; "
                    "check the user and virtual host in the URL, or username_env and password_env",
                    backend="rabbitmq",
                ) from error
            logger.warning("rabbitmq transport (%s): connecting to %s failed: %s; retrying in the background",
                           self.role, self.settings.safe_url, describe_error(error))
            self._start_reconnecting()

    def unavailable(self, advice: str = "") -> TransportUnavailable:
        """Build the error for a call made while the connection is down; ``advice`` ends its message."""
        if self.blocked:
            reason = f"RabbitMQ at {self.settings.safe_url} blocks publishing because of a resource alarm (memory or disk)"
        else:
            reason = f"RabbitMQ at {self.settings.safe_url} is not reachable right now; the transport is reconnecting"
        return TransportUnavailable(f"{reason}; {advice}" if advice else reason, backend="rabbitmq")

    def call(self, start: Callable[[Callable[[Any], None]], Any]) -> asyncio.Future[Any]:
        """Run ``start(callback)``, which sends one AMQP request, and return a future of the reply frame.

        The future fails with ``TransportUnavailable`` if the connection closes before the reply.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)

        def resolve(reply: Any) -> None:
            if not future.done():
                future.set_result(reply)

        start(resolve)
        return future

    async def open_channel(self, connection: AsyncioConnection) -> Channel:
        """Open a channel whose unexpected closure closes the whole connection, so one recovery path handles both."""
        channel = await self.call(lambda callback: connection.channel(on_open_callback=callback))
        channel.add_on_close_callback(self._on_channel_closed)
        return channel

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[AsyncioConnection] = loop.create_future()
        self._closed = loop.create_future()

        def on_open(connection: AsyncioConnection) -> None:
            if not opened.done():
                opened.set_result(connection)

        def on_open_error(connection: AsyncioConnection, error: BaseException) -> None:
            if not opened.done():
                opened.set_exception(error)

        parameters = self.settings.connection_parameters(connection_name(self.role))
        connection = AsyncioConnection(parameters, on_open, on_open_error, self._on_connection_closed,
                                       custom_ioloop=BridgedIOServices(loop))
        try:
            await asyncio.wait_for(self._set_up(opened), SETUP_TIMEOUT)
        except BaseException:
            if not (connection.is_closing or connection.is_closed):
                connection.close()
            raise

    async def _set_up(self, opened: asyncio.Future[AsyncioConnection]) -> None:
        connection = await opened
        self.connection = connection
        self.blocked = False
        connection.add_on_connection_blocked_callback(self._on_blocked)
        connection.add_on_connection_unblocked_callback(self._on_unblocked)
        await self.on_connected(connection)
        if not connection.is_open:
            raise TransportUnavailable(f"the connection to {self.settings.safe_url} closed during set-up", backend="rabbitmq")
        self._established = True
        self._ready.set()
        logger.info("rabbitmq transport (%s): connected to %s", self.role, self.settings.safe_url)

    def _on_blocked(self, connection: AsyncioConnection, frame: Any) -> None:
        # NOTE: no test raises a resource alarm in the broker, so this path has not been run.
        self.blocked = True
        logger.warning("rabbitmq transport (%s): the broker blocked publishing on this connection: %s",
                       self.role, getattr(frame.method, "reason", "resource alarm"))

    def _on_unblocked(self, connection: AsyncioConnection, frame: Any) -> None:
        self.blocked = False
        logger.info("rabbitmq transport (%s): the broker unblocked publishing on this connection", self.role)

    def _on_channel_closed(self, channel: Channel, error: BaseException) -> None:
        connection = self.connection
        if self._closing or connection is None or channel.connection is not connection:
            return
        if connection.is_closing or connection.is_closed:
            return
        reason = f"the broker closed channel {channel.channel_number}: {describe_error(error)}"
        logger.error("rabbitmq transport (%s): %s; reconnecting", self.role, reason)
        self._ready.clear()
        # An AMQP reply text is a short string of at most 255 bytes.
        connection.close(reply_code=200, reply_text=reason.encode()[:250].decode(errors="ignore"))

    def _on_connection_closed(self, connection: AsyncioConnection, error: BaseException) -> None:
        was_established = self._established and connection is self.connection
        if connection is self.connection:
            self._ready.clear()
            self._established = False
            self.connection = None
        reason = (f"the connection to RabbitMQ at {self.settings.safe_url} was lost "
                  f"({describe_error(error)})")
        for future in list(self._pending):
            if not future.done():
                future.set_exception(TransportUnavailable(reason, backend="rabbitmq"))
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)
        if self._closing:
            return
        if was_established:
            logger.warning("rabbitmq transport (%s): %s; reconnecting", self.role, reason)
            self.on_lost(reason)
            self._start_reconnecting()

    def _start_reconnecting(self) -> None:
        if self._closing:
            return
        if self._reconnect_task is None or self._reconnect_task.done():
            self._reconnect_task = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        attempt = 0
        while not self._closing:
            delay = RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)]
            await asyncio.sleep(delay)
            attempt += 1
            logger.info("rabbitmq transport (%s): reconnect attempt %d to %s", self.role, attempt, self.settings.safe_url)
            try:
                await self._connect()
            except CONNECT_ERRORS as error:
                next_delay = RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)]
                logger.warning("rabbitmq transport (%s): reconnect attempt %d failed: %s; next attempt in %gs",
                               self.role, attempt, describe_error(error), next_delay)
                continue
            logger.info("rabbitmq transport (%s): reconnect attempt %d succeeded; channels and queues declared again",
                        self.role, attempt)
            return

    async def close(self) -> None:
        """Stop reconnecting and close the connection, waiting up to ``CLOSE_TIMEOUT`` seconds."""
        self._closing = True
        self._ready.clear()
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
            await asyncio.gather(self._reconnect_task, return_exceptions=True)
        connection = self.connection
        if connection is None or connection.is_closed:
            return
        if not connection.is_closing:
            connection.close()
        if self._closed is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._closed), CLOSE_TIMEOUT)
            except asyncio.TimeoutError:
                logger.warning("rabbitmq transport (%s): the broker did not confirm closing the connection within %gs",
                               self.role, CLOSE_TIMEOUT)
