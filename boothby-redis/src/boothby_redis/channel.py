"""A pipelined command connection for the per-invocation commands, lighter than redis-py's client calls.

redis-py's ``Redis.execute_command`` checks a connection out of the pool, checks it for stale
data, runs retry and metrics wrappers and, on Python 3.11 with a socket timeout, starts an
extra task for every write. ``bench/client_overhead.py`` measured a PUBLISH through it at 32 to
36 µs of CPU, and through this class at 22 to 26 µs (2-core development machine, see
BENCHMARKS.md). This class keeps one redis-py connection open, writes each command at once and
lets one reader task match the replies to the waiting futures in order, so that callers may
also skip waiting.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any, Sequence

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.connection import AbstractConnection

from .connection import CONNECTION_ERRORS

logger = logging.getLogger(__name__)


class CommandChannel:
    """Sends commands over one dedicated connection and resolves one future per reply, in order.

    The connection opens on first use and again after a failure. A failure fails every command
    still waiting for its reply with the connection error. A command whose reply takes longer
    than ``timeout`` seconds counts as a failure of the connection.
    """

    def __init__(self, client: aioredis.Redis, timeout: float, description: str) -> None:
        self.client = client
        self.timeout = timeout
        self.description = description
        self._connection: AbstractConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._connecting: asyncio.Lock | None = None

    async def _open(self) -> AbstractConnection:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._connection is not None:
                return self._connection
            pool = self.client.connection_pool
            # No socket timeout on this connection: on Python 3.11 redis-py would wrap every write
            # in asyncio.wait_for, which starts a task. Replies are timed in ``execute`` instead.
            connection = pool.connection_class(**{**pool.connection_kwargs, "socket_timeout": None})
            await connection.connect()
            self._connection = connection
            self._reader = asyncio.create_task(self._read(connection), name=f"redis-{self.description}")
            return connection

    async def send(self, *command: Any) -> asyncio.Future[Any]:
        """Write one command and return the future of its reply without waiting for it.

        Opens the connection first if needed. Raises the connection error if writing fails.
        """
        [future] = await self.send_many([command])
        return future

    async def send_many(self, commands: Sequence[Sequence[Any]]) -> list[asyncio.Future[Any]]:
        """Write several commands in one write and return the futures of their replies, in order."""
        connection = self._connection or await self._open()
        if not connection.is_connected:
            error = redis.exceptions.ConnectionError(f"the {self.description} connection is closed")
            self._fail(connection, error)
            raise error
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in commands]
        self._waiting.extend(futures)
        # The commands are written before send_packed_command first yields (the connection is
        # open and the health check is off), so replies come back in the order of self._waiting.
        try:
            await connection.send_packed_command(connection.pack_commands(commands), check_health=False)
        except CONNECTION_ERRORS as error:
            self._fail(connection, error)
            raise
        return futures

    async def execute(self, *command: Any) -> Any:
        """Send one command and return its reply, or raise the error Redis or the connection returned."""
        future = await self.send(*command)
        try:
            async with asyncio.timeout(self.timeout):
                return await future
        except TimeoutError:
            error = redis.exceptions.TimeoutError(f"no reply from Redis within {self.timeout:g}s")
            self._fail(self._connection, error)
            raise error from None

    async def _read(self, connection: AbstractConnection) -> None:
        while True:
            try:
                reply = await connection.read_response()
            except redis.exceptions.ResponseError as error:
                reply = error
            except CONNECTION_ERRORS as error:
                self._fail(connection, error)
                return
            except asyncio.CancelledError:
                self._fail(connection, redis.exceptions.ConnectionError(f"the {self.description} connection was closed"))
                raise
            if not self._waiting:
                logger.error("redis transport: %s connection received a reply that no command waits for: %r; reconnecting",
                             self.description, reply)
                self._fail(connection, redis.exceptions.ConnectionError("unexpected reply"))
                return
            future = self._waiting.popleft()
            if future.done():
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    def _fail(self, connection: AbstractConnection | None, error: BaseException) -> None:
        if connection is None or connection is not self._connection:
            return
        self._connection = None
        waiting, self._waiting = self._waiting, collections.deque()
        for future in waiting:
            if not future.done():
                future.set_exception(error)
        if self._reader is not None and self._reader is not asyncio.current_task():
            self._reader.cancel()
        self._reader = None
        asyncio.get_running_loop().create_task(connection.disconnect(nowait=True))

    def abort(self, reason: str) -> None:
        """Drop the connection now; commands still waiting fail with ``ConnectionError(reason)``."""
        self._fail(self._connection, redis.exceptions.ConnectionError(reason))

    async def close(self) -> None:
        """Close the connection; commands still waiting fail with ``ConnectionError``."""
        connection = self._connection
        if connection is not None:
            self._fail(connection, redis.exceptions.ConnectionError(f"the {self.description} connection was closed"))
            await connection.disconnect(nowait=True)
