"""pika I/O services that run the AMQP stream on the event loop's own transport, one write per loop pass.

pika's asyncio adapter watches the socket itself: every write waits for the next writability
event of the loop and then sends each frame with its own ``send`` call, so publishing one
message costs three system calls. Here the event loop's TCP (or TLS) transport carries the
stream, and the frames pika writes during one pass of the loop are joined and written at once.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any, Callable

# NOTE: _AsyncioIOServicesAdapter is private to pika and was checked against pika 1.4.4 only.
# Only create_streaming_connection is replaced. Timers, name resolution and the TCP connect stay pika's.
from pika.adapters.asyncio_connection import _AsyncioIOServicesAdapter
from pika.adapters.utils import nbio_interface


class StreamBridge(asyncio.Protocol, nbio_interface.AbstractStreamTransport):
    """The asyncio protocol of one AMQP connection, and pika's stream transport on top of it.

    Bytes read go straight to pika's protocol. Frames pika writes are collected and handed to
    the asyncio transport in one ``write`` by a callback scheduled with ``call_soon``, so
    everything written in one pass of the event loop leaves in one ``send``.
    """

    def __init__(self, protocol: nbio_interface.AbstractStreamProtocol, loop: asyncio.AbstractEventLoop) -> None:
        self._protocol = protocol
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._pending: list[bytes] = []
        self._pending_size = 0

    # asyncio.Protocol.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._protocol.data_received(data)

    def eof_received(self) -> bool | None:
        return self._protocol.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._pending.clear()
        self._pending_size = 0
        self._protocol.connection_lost(exc)

    # pika's AbstractStreamTransport.

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def get_protocol(self) -> nbio_interface.AbstractStreamProtocol:
        return self._protocol

    def get_write_buffer_size(self) -> int:
        buffered = self._transport.get_write_buffer_size() if self._transport is not None else 0
        return self._pending_size + buffered

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)
        self._pending_size += len(data)

    def _flush(self) -> None:
        data = b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(data)


class BridgedIOServices(_AsyncioIOServicesAdapter):
    """pika's asyncio I/O services, with the AMQP stream carried by a ``StreamBridge``."""

    def create_streaming_connection(
        self,
        protocol_factory: Callable[[], nbio_interface.AbstractStreamProtocol],
        sock: socket.socket,
        on_done: Callable[[Any], None],
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> nbio_interface.AbstractIOReference:
        loop = self.get_native_ioloop()

        async def link_up() -> tuple[StreamBridge, nbio_interface.AbstractStreamProtocol]:
            protocol = protocol_factory()
            bridge = StreamBridge(protocol, loop)
            try:
                await loop.create_connection(
                    lambda: bridge, sock=sock, ssl=ssl_context,
                    server_hostname=server_hostname if ssl_context is not None else None,
                )
            except BaseException:
                sock.close()
                raise
            protocol.connection_made(bridge)
            return bridge, protocol

        return self._schedule_and_wrap_in_io_ref(link_up(), on_done)
