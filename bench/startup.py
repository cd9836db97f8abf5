"""Measure how long `boothby up` takes from its start to the first correct response."""

from __future__ import annotations

import time

from .contenders import (TRIVIAL_BODY, RunContext, boothby_command, free_port, http_request,
                         write_boothby_config)

STARTUP_WORKERS = 4
STARTUP_TIMEOUT = 60.0
POLL_INTERVAL = 0.005
"""Seconds between two attempts; refused connections return at once, so this bounds the error."""


def measure_startup(context: RunContext, sample: int) -> dict:
    """Start `boothby up` (embedded transport, the trivial function, 4 workers), time its first response, stop it.

    Returns ``{"seconds": float}``, or ``{"seconds": None, "error": str}`` when no correct
    response came within STARTUP_TIMEOUT.
    """
    directory = context.work_dir / f"startup-{sample}"
    directory.mkdir()
    port = free_port()
    config = write_boothby_config(directory, "embedded", port, STARTUP_WORKERS, context.grappler_workers,
                                  ("trivial",), 300_000)
    url = f"http://127.0.0.1:{port}/trivial"
    started = time.monotonic()
    service = context.services.start("boothby up (start-up sample)",
                                     [boothby_command(context.python), "-c", str(config), "up"],
                                     directory / "boothby.log")
    try:
        last_response = "no response"
        while time.monotonic() - started < STARTUP_TIMEOUT:
            if not service.running():
                return {"seconds": None,
                        "error": f"boothby up exited with code {service.popen.returncode}:\n{service.log_tail(1500)}"}
            try:
                status, body = http_request(url, timeout=5)
                if status == 200 and body == TRIVIAL_BODY:
                    return {"seconds": time.monotonic() - started}
                last_response = f"{status} {body[:200]!r}"
            except OSError as error:
                last_response = str(error)
            time.sleep(POLL_INTERVAL)
        return {"seconds": None, "error": f"no correct response within {STARTUP_TIMEOUT:.0f}s; last: {last_response}"}
    finally:
        context.services.stop(service)
