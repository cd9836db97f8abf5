"""Queue names and declarations shared by the grappler and deflector sides."""

from __future__ import annotations

import os
import re
import socket
import uuid

from pika.channel import Channel

from .connection import BrokerConnection

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def request_queue(prefix: str, function: str) -> str:
    """Name the durable queue of ``function``'s invocations."""
    return f"{prefix}.invoke.{function}"


def reply_queue(prefix: str) -> str:
    """Name a new reply queue for this process: prefix, host, pid and a random part, so no two processes share one."""
    host = _UNSAFE.sub("-", socket.gethostname())[:64]
    return f"{prefix}.reply.{host}.{os.getpid()}.{uuid.uuid4().hex[:12]}"


async def declare_request_queue(connection: BrokerConnection, channel: Channel, name: str) -> None:
    """Declare a function's queue: durable, so that the queue survives a broker restart (its transient messages do not).

    The queue has no extra arguments. If it already exists with other arguments, the broker
    closes the channel (406 PRECONDITION_FAILED) and the connection attempt fails with that reason.
    """
    await connection.call(lambda callback: channel.queue_declare(name, durable=True, callback=callback))
