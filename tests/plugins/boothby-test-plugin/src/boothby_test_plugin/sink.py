"""A log sink that appends each function log record as a JSON line to the file in ``[log_sink.jsonfile] path``."""

import json

import boothby
from boothby.logsink import LogSink


class JsonFileSink(LogSink):
    name = "jsonfile"

    async def write(self, records):
        with open(self.settings["path"], "a", encoding="utf-8") as file:
            for record in records:
                file.write(json.dumps(record._asdict()) + "\n")


@boothby.hookimpl
def boothby_register_log_sinks(register):
    register("jsonfile", JsonFileSink)
