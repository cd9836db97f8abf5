"""The grappler's reply channel: one pub/sub subscription per process that reconnects by itself."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection

from .connection import CONNECTION_ERRORS, reconnect_delay
from .settings import RedisSettings

logger = logging.getLogger(__name__)


class ReplyListener:
    """Subscribes to one channel on a dedicated connection and hands every message to ``on_reply``.

    When the connection is lost it calls ``on_lost(reason)`` once, then reconnects with growing
    delays, logging every attempt and its outcome, until ``close`` is called. An idle connection
    is checked with a PING every ``socket_timeout`` seconds, and no response within another
    ``socket_timeout`` counts as a lost connection.
    """

    def __init__(self, settings: RedisSettings, client: aioredis.Redis, channel: str,
                 on_reply: Callable[[bytes], None], on_lost: Callable[[str], None]) -> None:
        self.settings = settings
        self.client = client
        self.channel = channel
        self.on_reply = on_reply
        self.on_lost = on_lost
        self.subscribed = False
        self._connection: AbstractConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        """Subscribe now if Redis responds, or else keep trying in the background."""
        try:
            await self._subscribe()
        except CONNECTION_ERRORS as error:
            logger.warning("redis transport: cannot subscribe to reply channel %s at %s yet: %s; retrying in the background",
                           self.channel, self.settings.server, error)
            self._task = asyncio.create_task(self._reconnect_and_listen(), name="redis-reply-channel")
            return
        self._task = asyncio.create_task(self._listen_forever(), name="redis-reply-channel")

    async def _subscribe(self) -> None:
        connection = self.client.connection_pool.make_connection()
        try:
            await connection.connect()
            await connection.send_command("SUBSCRIBE", self.channel)
            confirmation = await connection.read_response()
        except BaseException:
            await connection.disconnect(nowait=True)
            raise
        if not (isinstance(confirmation, list) and confirmation[0] == b"subscribe"):
            await connection.disconnect(nowait=True)
            raise ConnectionError(f"unexpected response to SUBSCRIBE: {confirmation!r}")
        self._connection = connection
        self.subscribed = True
        logger.info("redis transport: subscribed to reply channel %s at %s", self.channel, self.settings.server)

    async def _listen_forever(self) -> None:
        while not self._closing:
            try:
                await self._listen()
            except CONNECTION_ERRORS as error:
                if self._closing:
                    return
                await self._connection_lost(error)
            except Exception as error:
                # Anything else would end this task silently and leave every later call waiting
                # for its deadline, so it is handled like a lost connection.
                logger.exception("redis transport: reading reply channel %s failed unexpectedly", self.channel)
                await self._connection_lost(error)
            await self._reconnect()

    async def _reconnect_and_listen(self) -> None:
        await self._reconnect()
        await self._listen_forever()

    async def _listen(self) -> None:
        connection = self._connection
        assert connection is not None
        waiting_for_pong = False
        while True:
            # A read that times out returns None and leaves the connection usable.
            message = await connection.read_response(timeout=self.settings.socket_timeout)
            if message is None:
                if waiting_for_pong:
                    raise TimeoutError(f"no response to PING within {self.settings.socket_timeout:g}s")
                await connection.send_command("PING")
                waiting_for_pong = True
                continue
            waiting_for_pong = False
            if message[0] == b"message":
                self.on_reply(message[2])

    async def _connection_lost(self, error: BaseException) -> None:
        self.subscribed = False
        reason = f"the connection to Redis at {self.settings.server} was lost ({error or type(error).__name__})"
        logger.warning("redis transport: reply channel %s: %s; reconnecting", self.channel, reason)
        self.on_lost(reason)
        if self._connection is not None:
            await self._connection.disconnect(nowait=True)
            self._connection = None

    async def _reconnect(self) -> None:
        """Subscribe again, with growing delays between attempts, until it works or ``close`` is called."""
        attempt = 0
        started = time.monotonic()
        while not self._closing:
            attempt += 1
            delay = reconnect_delay(attempt)
            await asyncio.sleep(delay)
            try:
                await self._subscribe()
            except CONNECTION_ERRORS as error:
                logger.warning("redis transport: reconnect attempt %d to %s failed: %s; next attempt in %.2fs",
                               attempt, self.settings.server, error, reconnect_delay(attempt + 1))
                continue
            logger.info("redis transport: reconnect attempt %d to %s succeeded after %.1fs; reply channel %s is back",
                        attempt, self.settings.server, time.monotonic() - started, self.channel)
            return

    async def close(self) -> None:
        """Stop listening and close the connection; no ``on_lost`` call follows."""
        self._closing = True
        self.subscribed = False
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._connection is not None:
            await self._connection.disconnect(nowait=True)
            self._connection = None
