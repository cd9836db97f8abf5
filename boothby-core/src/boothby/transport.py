"""The transport plugin contract: move invocations to deflectors and results back to grapplers."""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Mapping, Sequence

from .config import Config


class Delivery:
    """One invocation received by a deflector.

    The deflector calls ``started`` just before a worker runs the invocation and ``finished``
    once its result is published (or it was dropped as expired). ``release`` hands back an
    invocation the deflector received but will not run, so that another deflector can take it;
    it is called at shutdown. A transport overrides whichever of them its acknowledgement
    scheme needs; the defaults do nothing.
    """

    __slots__ = ("payload",)

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    async def started(self) -> None:
        """Mark the invocation as started by a worker.

        Raise a ``BoothbyError`` (usually ``TransportError``) when the invocation must not run
        here, for example because the broker gave it to another consumer or its acknowledgement
        failed. The deflector then drops it without a result and without calling ``finished``;
        the transport keeps it available to whichever consumer fetches it next.
        """

    async def finished(self) -> None:
        """Mark the invocation as done: its result is published or it expired."""

    async def release(self) -> None:
        """Give the invocation back unstarted, so that another consumer may run it."""


OnReply = Callable[[bytes], None]
OnDisconnect = Callable[[str], None]


class Transport:
    """Base class of transport plugins.

    One instance serves one process. A grappler worker process calls ``start_client`` and then
    ``publish``; a deflector calls ``start_server`` and then ``receive`` and ``reply``. Both call
    ``close`` at the end. Every method runs on the process's asyncio event loop.

    Payloads are opaque bytes (Avro single-object messages): transports never decode them.
    """

    name: ClassVar[str] = ""

    connection_errors: ClassVar[tuple[type[BaseException], ...]] = (ConnectionError, OSError)
    """Exceptions of the backend library that mean the broker is unreachable, not that a message is bad."""

    def __init__(self, settings: Mapping[str, Any], config: Config) -> None:
        self.settings = settings
        self.config = config

    @property
    def connected(self) -> bool:
        """Whether the grappler side can publish right now; the health check reports it."""
        return True

    # Grappler side.

    async def start_client(self, on_reply: OnReply, on_disconnect: OnDisconnect) -> str:
        """Open this process's reply channel and return its address.

        Call ``on_reply(payload)`` for every result that arrives on the channel, from the event
        loop thread. Call ``on_disconnect(reason)`` when the channel is lost, so that calls
        waiting for a reply fail at once instead of at their deadline. The transport then
        reconnects by itself and keeps the same address, or stays reachable at it.
        """
        raise NotImplementedError

    async def publish(self, function: str, payload: bytes, *, request_id: str, deadline: float) -> None:
        """Queue one invocation for ``function``.

        ``deadline`` is the absolute time (``time.time()`` seconds) after which the invocation
        is worthless; a transport may let the broker discard it then. Raise
        ``TransportUnavailable`` when the broker cannot be reached.
        """
        raise NotImplementedError

    # Deflector side.

    async def start_server(self, functions: Sequence[str]) -> None:
        """Connect and prepare to receive invocations for ``functions``."""
        raise NotImplementedError

    async def receive(self, function: str, max_count: int) -> list[Delivery]:
        """Wait for invocations of ``function`` and return between 1 and ``max_count`` of them.

        The deflector calls this only when it has free worker slots, and ``max_count`` is their
        number: a transport must not take more invocations from a shared queue than that, so
        an idle deflector elsewhere can run them. It survives broker restarts by reconnecting.
        """
        raise NotImplementedError

    async def reply(self, address: str, payload: bytes, *, request_id: str) -> None:
        """Publish one result to the reply channel at ``address``."""
        raise NotImplementedError

    async def close(self) -> None:
        """Release connections. Invocations received but not started should be given back."""
