"""Registers the kafka transport and the kafka log sink with Boothby."""

from __future__ import annotations

from boothby import hookimpl

from .logsink import KafkaLogSink
from .transport import KafkaTransport


@hookimpl
def boothby_register_transports(register):
    register("kafka", KafkaTransport)


@hookimpl
def boothby_register_log_sinks(register):
    register("kafka", KafkaLogSink)
