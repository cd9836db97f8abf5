"""Register the ``rabbitmq`` transport with Boothby."""

from __future__ import annotations

from typing import Callable

from boothby import hookimpl
from boothby.transport import Transport


@hookimpl
def boothby_register_transports(register: Callable[[str, type[Transport]], None]) -> None:
    from .transport import RabbitMQTransport

    register("rabbitmq", RabbitMQTransport)
