"""The kafka transport: request topics per function, deflectors in consumer groups, a reply topic per grappler."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError, RequestTimedOutError
from boothby.config import Config
from boothby.errors import TransportUnavailable
from boothby.transport import Delivery, OnDisconnect, OnReply, Transport

from .deflector_side import DeflectorSide, warn_about_session_timeout
from .grappler_side import GrapplerSide
from .settings import TransportSettings, transport_settings


class KafkaTransport(Transport):
    """Invocations and results through Kafka topics; the package README explains the design."""

    name = "kafka"

    connection_errors = (
        KafkaConnectionError, NodeNotReadyError, RequestTimedOutError, KafkaTimeoutError, ConnectionError, OSError,
    )

    def __init__(self, settings: Mapping[str, Any], config: Config) -> None:
        super().__init__(settings, config)
        self.options: TransportSettings = transport_settings(settings, config)
        self.grappler: GrapplerSide | None = None
        self.deflector: DeflectorSide | None = None

    # Grappler side.

    @property
    def connected(self) -> bool:
        return self.grappler is not None and self.grappler.connected

    async def start_client(self, on_reply: OnReply, on_disconnect: OnDisconnect) -> str:
        self.grappler = GrapplerSide(self.options, list(self.config.functions), on_reply, on_disconnect)
        await self.grappler.start()
        return self.grappler.address

    async def publish(self, function: str, payload: bytes, *, request_id: str, deadline: float) -> None:
        if self.grappler is None:
            raise TransportUnavailable("the kafka transport's client side is not started", backend=self.name)
        await self.grappler.publish(function, payload, request_id)

    # Deflector side.

    async def start_server(self, functions: Sequence[str]) -> None:
        warn_about_session_timeout(self.options, [self.config.functions[name] for name in functions
                                                  if name in self.config.functions])
        self.deflector = DeflectorSide(self.options, functions)
        await self.deflector.start()

    async def receive(self, function: str, max_count: int) -> list[Delivery]:
        assert self.deflector is not None, "start_server() first"
        return list(await self.deflector.receive(function, max_count))

    async def reply(self, address: str, payload: bytes, *, request_id: str) -> None:
        assert self.deflector is not None, "start_server() first"
        await self.deflector.reply(address, payload, request_id)

    async def close(self) -> None:
        for side in (self.grappler, self.deflector):
            if side is not None:
                await side.close()
