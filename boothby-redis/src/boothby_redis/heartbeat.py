"""A deflector's heartbeat key: proof to other deflectors that it is alive, and to itself that nothing was taken from it."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

import redis.asyncio as aioredis

from .connection import CONNECTION_ERRORS

logger = logging.getLogger(__name__)

SAFETY_FRACTION = 0.05
"""Part of the timeout kept as a safety margin against the two clocks running at slightly different rates."""


class Heartbeat:
    """One deflector's heartbeat key, refreshed with a time to live of ``timeout`` seconds every third of ``timeout``.

    Other deflectors requeue this deflector's unstarted entries only while the key is missing,
    and the REAP script checks that atomically. So while the key provably existed all the time
    since an entry was read, no other deflector can have taken the entry, and this deflector may
    start it without asking Redis first. ``covers`` decides that from local bookkeeping alone.
    The key exists at least until ``timeout`` after the last successful refresh was sent, and a
    refresh whose response comes after that point starts a new unbroken stretch.
    """

    def __init__(self, client: aioredis.Redis, key: str, timeout: float) -> None:
        self.client = client
        self.key = key
        self.timeout = timeout
        self.alive_since: float | None = None
        self.alive_until = 0.0
        self._failing = False
        self._task: asyncio.Task[None] | None = None

    async def beat(self) -> None:
        """Refresh the key once; raise the connection error if Redis does not respond."""
        sent = time.monotonic()
        await self.client.set(self.key, f"{socket.gethostname()} pid {os.getpid()}", px=int(self.timeout * 1000))
        responded = time.monotonic()
        if self.alive_since is None or responded >= self.alive_until:
            # The key may have expired before this refresh reached Redis.
            self.alive_since = responded
        self.alive_until = sent + self.timeout

    def covers(self, since: float) -> bool:
        """Return whether the key has existed without a break from monotonic time ``since`` until now."""
        if self.alive_since is None or self.alive_since > since:
            return False
        return time.monotonic() < self.alive_until - self.timeout * SAFETY_FRACTION

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="redis-heartbeat")

    async def _run(self) -> None:
        interval = self.timeout / 3
        while True:
            try:
                await self.beat()
            except CONNECTION_ERRORS as error:
                if not self._failing:
                    logger.warning("redis transport: refreshing heartbeat key %s failed: %s; retrying every %.2fs",
                                   self.key, error, interval)
                self._failing = True
            else:
                if self._failing:
                    logger.info("redis transport: heartbeat key %s refreshed again", self.key)
                self._failing = False
            await asyncio.sleep(interval)

    async def stop(self) -> None:
        """Stop refreshing and delete the key; raise the connection error if Redis does not respond."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.alive_since = None
        await self.client.delete(self.key)
