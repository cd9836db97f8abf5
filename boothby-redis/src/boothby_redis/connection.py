"""Redis connection pools built from the settings, the errors that mean "Redis is unreachable", and retry delays."""

from __future__ import annotations

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from .settings import RedisSettings

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    ConnectionError,
    OSError,
)
"""Errors that mean the server cannot be reached or stopped responding, not that a command was invalid."""

RECONNECT_DELAYS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
"""Seconds to wait before each reconnect attempt; the last value repeats."""


def reconnect_delay(attempt: int) -> float:
    """Return the delay before reconnect attempt number ``attempt`` (counted from 1)."""
    return RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS)) - 1]


def make_client(settings: RedisSettings, client_name: str) -> aioredis.Redis:
    """Create a client with its own connection pool.

    redis-py's own retries are off: a command that fails after it was sent may have run, and
    running an XADD twice would run an invocation twice. Callers translate failures instead.
    The protocol is RESP2 because redis-py 8 defaults to RESP3, which routes pub/sub messages
    through push handlers that the reply channel's plain reads would never see.
    """
    options = settings.connection_options()
    if not settings.url.startswith("unix:"):
        # TCP keepalive notices a peer that vanished without closing the connection; unix
        # sockets have no such option, and redis-py rejects it for them.
        options["socket_keepalive"] = True
    pool = aioredis.ConnectionPool.from_url(
        settings.url,
        socket_timeout=settings.socket_timeout,
        socket_connect_timeout=settings.socket_connect_timeout,
        retry=Retry(NoBackoff(), 0),
        client_name=client_name,
        protocol=2,
        **options,
    )
    return aioredis.Redis(connection_pool=pool)
