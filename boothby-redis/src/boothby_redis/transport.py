"""The redis transport: invocations on one stream per function, results on one pub/sub channel per grappler process."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from typing import Any, ClassVar, Mapping, Sequence

import redis.asyncio as aioredis
import redis.exceptions

from boothby.config import Config
from boothby.errors import TransportError, TransportUnavailable
from boothby.transport import Delivery, OnDisconnect, OnReply, Transport

from . import scripts
from .channel import CommandChannel
from .connection import CONNECTION_ERRORS, make_client
from .keys import Keys
from .queue import WorkQueue
from .replies import ReplyListener
from .settings import parse_settings

logger = logging.getLogger(__name__)

RETENTION_MARGIN = 1.0
"""Seconds an invocation stays in its stream beyond its function's timeout before trimming may drop it."""

PUBLISH_SHA = hashlib.sha1(scripts.PUBLISH.encode("utf-8")).hexdigest()


class RedisTransport(Transport):
    """Invocations and results through a Redis server, shared by any number of grapplers and deflectors."""

    name = "redis"

    connection_errors: ClassVar[tuple[type[BaseException], ...]] = CONNECTION_ERRORS

    def __init__(self, settings: Mapping[str, Any], config: Config) -> None:
        super().__init__(settings, config)
        self.redis_settings = parse_settings(settings)
        self.keys = Keys(self.redis_settings.key_prefix)
        self.address = ""
        self.undelivered_results = 0
        self._client: aioredis.Redis | None = None
        self._commands: CommandChannel | None = None
        self._listener: ReplyListener | None = None
        self._queue: WorkQueue | None = None
        self._retention_ms = {
            name: int((function.timeout + RETENTION_MARGIN) * 1000) for name, function in config.functions.items()
        }

    def _make_client(self, role: str) -> aioredis.Redis:
        if self._client is None:
            self._client = make_client(self.redis_settings, f"boothby-{role}-{os.getpid()}")
        return self._client

    # Grappler side.

    @property
    def connected(self) -> bool:
        return self._listener is not None and self._listener.subscribed

    async def start_client(self, on_reply: OnReply, on_disconnect: OnDisconnect) -> str:
        client = self._make_client("grappler")
        commands = CommandChannel(client, self.redis_settings.socket_timeout, "publish")
        self._commands = commands
        self.address = self.keys.new_reply_channel()

        def reply_channel_lost(reason: str) -> None:
            on_disconnect(reason)
            # The publish connection broke at the same moment. Closing it now makes the first
            # publish after the reconnect open a fresh connection instead of failing.
            asyncio.get_running_loop().create_task(commands.close())

        self._listener = ReplyListener(self.redis_settings, client, self.address, on_reply, reply_channel_lost)
        await self._listener.start()
        return self.address

    async def publish(self, function: str, payload: bytes, *, request_id: str, deadline: float) -> None:
        server = self.redis_settings.server
        if not self.connected:
            raise TransportUnavailable(
                f"Redis at {server} is not reachable: the reply channel is not subscribed; the transport is reconnecting, "
                "retry later", backend=self.name,
            )
        stream = self.keys.stream(function)
        arguments = [self.redis_settings.max_queue, self._retention_ms[function], int(deadline * 1000), request_id, payload]
        try:
            entry_id = await self._queue_invocation(stream, arguments)
        except CONNECTION_ERRORS as error:
            raise TransportUnavailable(f"queueing request {request_id} in Redis at {server} failed: {error}",
                                       backend=self.name) from error
        except redis.exceptions.RedisError as error:
            raise TransportUnavailable(f"Redis at {server} rejected request {request_id}: {error}",
                                       backend=self.name) from error
        if entry_id is None:
            raise TransportUnavailable(
                f"the queue of function {function} is full: it contains {self.redis_settings.max_queue} invocations, the limit set by "
                "[transport.redis] max_queue; retry later", backend=self.name,
            )

    async def _queue_invocation(self, stream: str, arguments: list[Any]) -> bytes | None:
        assert self._commands is not None, "start_client() was not called"
        try:
            return await self._commands.execute("EVALSHA", PUBLISH_SHA, 1, stream, *arguments)
        except redis.exceptions.NoScriptError:
            # Redis restarted or its script cache was flushed since this process loaded the script.
            await self._commands.execute("SCRIPT", "LOAD", scripts.PUBLISH)
            return await self._commands.execute("EVALSHA", PUBLISH_SHA, 1, stream, *arguments)

    # Deflector side.

    async def start_server(self, functions: Sequence[str]) -> None:
        client = self._make_client("deflector")
        self._queue = WorkQueue(self.redis_settings, self.keys, client)
        await self._queue.start(functions)

    async def receive(self, function: str, max_count: int) -> list[Delivery]:
        assert self._queue is not None, "start_server() was not called"
        return await self._queue.receive(function, max_count)

    async def reply(self, address: str, payload: bytes, *, request_id: str) -> None:
        if not address.startswith(self.keys.reply_prefix):
            raise TransportError(
                f"result of request {request_id} dropped: its reply address {address!r} is not a reply channel under "
                f"key prefix {self.keys.prefix!r}; grappler and deflector need the same [transport.redis] key_prefix",
                backend=self.name,
            )
        assert self._queue is not None, "start_server() was not called"
        try:
            receivers = await self._queue.commands.execute("PUBLISH", address, payload)
        except (CONNECTION_ERRORS + (redis.exceptions.RedisError,)) as error:
            raise TransportUnavailable(f"publishing the result of request {request_id} to Redis at "
                                       f"{self.redis_settings.server} failed: {error}", backend=self.name) from error
        if receivers == 0:
            self.undelivered_results += 1
            if self.undelivered_results == 1 or self.undelivered_results % 100 == 0:
                logger.warning("redis transport: no grappler listens on %s any more; result of request %s dropped "
                               "(%d such results so far)", address, request_id, self.undelivered_results)

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()
        if self._commands is not None:
            await self._commands.close()
        if self._queue is not None:
            await self._queue.close()
        if self._client is not None:
            await self._client.aclose()
