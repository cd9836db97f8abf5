"""The stdout log sink: one JSON line per function log record on the deflector's standard output."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime, timezone
from typing import Any, Mapping

from .. import hookimpl
from ..logsink import FunctionLog, LogSink


def format_record(record: FunctionLog) -> str:
    timestamp = datetime.fromtimestamp(record.timestamp_ms / 1000, tz=timezone.utc)
    return json.dumps({
        "time": timestamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "function": record.function,
        "request_id": record.request_id,
        "level": record.level,
        "message": record.message,
    }, ensure_ascii=False)


class StdoutLogSink(LogSink):
    """Writes records to standard output from a thread, so a blocked pipe never stalls the event loop."""

    name = "stdout"

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        self.stream = sys.stdout

    async def write(self, records: list[FunctionLog]) -> None:
        text = "".join(format_record(record) + "\n" for record in records)
        await asyncio.to_thread(self._write, text)

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


@hookimpl
def boothby_register_log_sinks(register):
    register("stdout", StdoutLogSink)
