"""Names of the Redis keys and channels one Boothby installation uses, all under its key prefix."""

from __future__ import annotations

import os
import secrets
import socket

GROUP = "deflectors"
"""The consumer group every deflector joins on every function's stream."""


class Keys:
    """Builds the key and channel names under one ``key_prefix``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.reply_prefix = f"{prefix}:replies:"

    def stream(self, function: str) -> str:
        """Return the stream holding the queued invocations of ``function``."""
        return f"{self.prefix}:invocations:{function}"

    def heartbeat(self, consumer: str) -> str:
        """Return the key a live deflector keeps refreshing; it expires when the deflector dies."""
        return f"{self.prefix}:deflectors:{consumer}"

    def new_reply_channel(self) -> str:
        """Return a new pub/sub channel name for one grappler process."""
        return f"{self.reply_prefix}{process_name()}"


def process_name() -> str:
    """Return ``host:pid:random`` naming this process uniquely, also across restarts that reuse a pid."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
