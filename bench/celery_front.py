"""HTTP front of the Celery contender: each request runs the echo task and waits for its result.

``GET /trivial`` sends a short text through the task, and ``POST /echo`` sends the request body
(UTF-8 text) and returns what the task returned. One thread serves each connection, and each
thread blocks in ``AsyncResult.get()`` as a synchronous web app calling Celery would.

Usage: python -m bench.celery_front HOST PORT
"""

from __future__ import annotations

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from celery.exceptions import TimeoutError as ResultTimeout

from bench.celery_app import echo

TRIVIAL_TEXT = "Hello, world!\n"
RESULT_TIMEOUT = 30.0
"""Seconds a request waits for the task's result before it gets 504."""


class FrontHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes. With Nagle's algorithm on, the second write waits for
    # the client's delayed ACK, which took about 40 ms per request here.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        if self.path.split("?")[0] != "/trivial":
            self._respond(404, b"not found: use GET /trivial or POST /echo\n")
            return
        self._run(TRIVIAL_TEXT)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.path.split("?")[0] != "/echo":
            self._respond(404, b"not found: use GET /trivial or POST /echo\n")
            return
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            self._respond(400, b"the body must be UTF-8 text: the task's JSON arguments carry text\n")
            return
        self._run(text)

    def _run(self, text: str) -> None:
        try:
            result = echo.delay(text).get(timeout=RESULT_TIMEOUT)
        except ResultTimeout:
            self._respond(504, f"no task result within {RESULT_TIMEOUT:g}s\n".encode())
            return
        except Exception as error:  # Any other task failure becomes a 502, which the load generator counts.
            self._respond(502, f"task failed: {error!r}\n".encode())
            return
        self._respond(200, result.encode("utf-8"))

    def _respond(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Keep quiet: an access log line per request would cost more than the request itself."""


class FrontServer(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 would refuse connections when the load generator opens 128 at once.
    request_queue_size = 1024


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m bench.celery_front HOST PORT", file=sys.stderr)
        return 2
    server = FrontServer((argv[0], int(argv[1])), FrontHandler)
    print(f"listening on http://{argv[0]}:{argv[1]}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
