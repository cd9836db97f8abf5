"""The ``rabbitmq`` transport: the Transport contract on top of the grappler and deflector sides."""

from __future__ import annotations

from typing import Any, ClassVar, Mapping, Sequence

import pika.exceptions

from boothby.config import Config
from boothby.transport import Delivery, OnDisconnect, OnReply, Transport

from .client import GrapplerClient
from .server import DeflectorServer
from .settings import parse_settings


class RabbitMQTransport(Transport):
    """Invocations in one durable queue per function, results in one exclusive reply queue per grappler process.

    Settings come from ``[transport.rabbitmq]`` and are validated when the transport is built;
    see ``boothby_rabbitmq.settings`` for the keys.
    """

    name = "rabbitmq"

    connection_errors: ClassVar[tuple[type[BaseException], ...]] = (
        ConnectionError, OSError, pika.exceptions.AMQPError,
    )

    def __init__(self, settings: Mapping[str, Any], config: Config) -> None:
        super().__init__(settings, config)
        self.options = parse_settings(settings, config)
        self._client: GrapplerClient | None = None
        self._server: DeflectorServer | None = None

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    # Grappler side.

    async def start_client(self, on_reply: OnReply, on_disconnect: OnDisconnect) -> str:
        self._client = GrapplerClient(self.options, list(self.config.functions), on_reply, on_disconnect)
        return await self._client.start()

    async def publish(self, function: str, payload: bytes, *, request_id: str, deadline: float) -> None:
        client = self._client
        if client is None:
            raise RuntimeError("publish() called before start_client()")
        client.publish(function, payload, request_id, deadline)

    # Deflector side.

    async def start_server(self, functions: Sequence[str]) -> None:
        self._server = DeflectorServer(self.options, functions)
        await self._server.start()

    async def receive(self, function: str, max_count: int) -> list[Delivery]:
        server = self._server
        if server is None:
            raise RuntimeError("receive() called before start_server()")
        return list(await server.receive(function, max_count))

    async def reply(self, address: str, payload: bytes, *, request_id: str) -> None:
        server = self._server
        if server is None:
            raise RuntimeError("reply() called before start_server()")
        server.reply(address, payload, request_id)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
        if self._server is not None:
            await self._server.close()
