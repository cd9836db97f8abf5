"""Register the ``redis`` transport with Boothby."""

from __future__ import annotations

from boothby import hookimpl

from .transport import RedisTransport


@hookimpl
def boothby_register_transports(register):
    register("redis", RedisTransport)
