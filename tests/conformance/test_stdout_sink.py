"""The stdout log sink against the log sink conformance suite, with its stream captured in memory."""

from __future__ import annotations

import io
import json
import time

from boothby.testing import LogSinkConformance
from boothby.testing.logsink import iso_to_ms


class SlowStream(io.StringIO):
    """A stream whose writes block, like standard output into a pipe whose reader is slow."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def write(self, text: str) -> int:
        time.sleep(self.delay)
        return super().write(text)


class TestStdoutSink(LogSinkConformance):
    log_sink_name = "stdout"

    def prepare_sink(self, sink):
        sink.stream = io.StringIO()

    def make_destination_slow(self, sink, seconds):
        sink.stream = SlowStream(seconds)
        return True

    def read_records(self, sink):
        records = []
        for line in sink.stream.getvalue().splitlines():
            fields = json.loads(line)
            fields["timestamp_ms"] = iso_to_ms(fields.pop("time"))
            records.append(fields)
        return records
