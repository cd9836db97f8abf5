"""The grappler: a falcon ASGI app that turns HTTP requests into invocations and waits for their results."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl

import falcon
import falcon.asgi

from .codec import invocation_schema, result_schema
from .config import Config
from .errors import CodecError, TransportUnavailable
from .plugins import Registry, load_registry

logger = logging.getLogger(__name__)

HEALTH_PATH = "/_boothby/health"
RESPONSE_HEADERS = "boothby.response_headers"
"""ASGI scope key holding the function's response headers, added verbatim by ``RawHeaders``."""

_HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer",
    "content-length", "x-request-id", "date",
})
_FORBIDDEN_IN_HEADERS = str.maketrans("", "", "\r\n\0")


def response_headers(headers: list[dict[str, str]], request_id: str) -> list[tuple[bytes, bytes]]:
    """Turn a function's header pairs into raw ASGI headers, keeping order and repeated names.

    Headers that the HTTP server owns (Content-Length, Transfer-Encoding, Connection and the
    like) are dropped, CR, LF and NUL are removed so a function cannot inject header lines,
    and characters outside ISO-8859-1 become "?".
    """
    raw = []
    for header in headers:
        name = header["name"].strip().lower()
        if not name or name in _HOP_BY_HOP or not name.isascii() or " " in name or ":" in name:
            logger.debug("grappler: request %s: response header %r dropped", request_id, header["name"])
            continue
        value = header["value"].translate(_FORBIDDEN_IN_HEADERS)
        raw.append((name.translate(_FORBIDDEN_IN_HEADERS).encode("ascii"), value.encode("latin-1", "replace")))
    return raw


class RawHeaders:
    """ASGI wrapper that appends the function's response headers exactly as the function set them.

    falcon merges repeated header names into one comma-separated line, except Set-Cookie.
    Functions expect each value on its own line, so the headers bypass falcon's header table.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.grappler: Grappler | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                extra = scope.get(RESPONSE_HEADERS)
                if extra:
                    message["headers"] = [*message["headers"], *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class ShuttingDown(Exception):
    """The grappler process is stopping and can no longer wait for this request's result."""


class PayloadTooLarge(Exception):
    """The request body is larger than ``[grappler] max_body_size``."""


class Grappler:
    """One grappler worker process: the reply channel, the table of waiting requests and the HTTP handler."""

    def __init__(self, config: Config, registry: Registry) -> None:
        self.config = config
        self.registry = registry
        backend = registry.get("transport", config.transport)
        self.transport = backend.factory(config.settings_for_transport(), config)
        self.functions = config.functions
        self.single = next(iter(self.functions)) if len(self.functions) == 1 else None
        self.max_body = config.grappler.max_body_size
        self.grace = config.grappler.reply_grace
        self.reply_address = ""
        self.pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.late_replies = 0
        self.undecodable_replies = 0
        self._invocation = invocation_schema()
        self._result = result_schema()
        self._loop: asyncio.AbstractEventLoop | None = None

    # Lifespan, called by falcon through ``process_startup`` and ``process_shutdown``.

    async def process_startup(self, scope: dict[str, Any], event: dict[str, Any]) -> None:
        self._loop = asyncio.get_running_loop()
        self.registry.plugin_manager.hook.boothby_startup(role="grappler", config=self.config)
        self.reply_address = await self.transport.start_client(self._on_reply, self._on_disconnect)
        logger.info("grappler pid %d ready: transport %s, reply address %s", os.getpid(), self.config.transport, self.reply_address)

    async def process_shutdown(self, scope: dict[str, Any], event: dict[str, Any]) -> None:
        await self.transport.close()
        try:
            self.registry.plugin_manager.hook.boothby_shutdown(role="grappler", config=self.config)
        except Exception:
            logger.exception("grappler: a boothby_shutdown hook failed")
        logger.info("grappler pid %d stopped; %d late replies were dropped", os.getpid(), self.late_replies)

    def begin_drain(self, grace: float) -> None:
        """Fail every request still waiting with a 503 one second before ``grace`` runs out."""
        logger.info("grappler pid %d: stopping; %d requests waiting, %gs to finish them",
                    os.getpid(), len(self.pending), grace)
        self._loop.call_later(max(grace - 1.0, 0.1), self._fail_pending_on_shutdown)  # type: ignore[union-attr]

    def _fail_pending_on_shutdown(self) -> None:
        pending, self.pending = self.pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(ShuttingDown())
        if pending:
            logger.warning("grappler pid %d: %d requests were still waiting at the end of the grace period; responded 503",
                           os.getpid(), len(pending))

    # Reply channel.

    def _on_reply(self, payload: bytes) -> None:
        try:
            result = self._result.decode(payload)
        except CodecError as error:
            self.undecodable_replies += 1
            logger.error("grappler: dropped a reply that cannot be decoded: %s", error)
            return
        future = self.pending.pop(result["id"], None)
        if future is None or future.done():
            self.late_replies += 1
            logger.info("grappler: reply for request %s arrived after the request ended; dropped (%d late replies so far)",
                        result["id"], self.late_replies)
            return
        future.set_result(result)

    def _on_disconnect(self, reason: str) -> None:
        pending, self.pending = self.pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(TransportUnavailable(reason, backend=self.config.transport))
        if pending:
            logger.warning("grappler: %d waiting requests failed because %s", len(pending), reason)

    # HTTP.

    async def __call__(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, **kwargs: Any) -> None:
        request_id = str(uuid.uuid4())
        resp.set_header("X-Request-Id", request_id)
        path = req.path
        if path == HEALTH_PATH:
            connected = self.transport.connected
            self._reply_json(resp, 200 if connected else 503, {
                "status": "ok" if connected else "transport unavailable",
                "transport": self.config.transport,
                "pid": os.getpid(),
            })
            return

        function, sub_path = self._route(path)
        if function is None:
            self._reply_json(resp, 404, {
                "error": "not found",
                "message": f"no function is served at {path}; functions: "
                           + ", ".join(f"/{name}" for name in self.functions),
                "requestId": request_id,
            })
            return

        try:
            body = await self._read_body(req)
        except PayloadTooLarge:
            self._reply_json(resp, 413, {
                "error": "payload too large",
                "message": f"the request body is larger than the limit of {self.max_body} bytes ([grappler] max_body_size)",
                "requestId": request_id,
            })
            return

        result = await self._invoke(req, function, sub_path, body, request_id)
        resp.status = result["status"]
        req.scope[RESPONSE_HEADERS] = response_headers(result["headers"], request_id)
        if result["body"] is not None:
            resp.data = result["body"]

    def _route(self, path: str) -> tuple[str | None, str]:
        name, _, rest = path[1:].partition("/")
        if name in self.functions:
            return name, "/" + rest
        if self.single is not None:
            return self.single, path
        return None, path

    async def _read_body(self, req: falcon.asgi.Request) -> bytes | None:
        length = req.content_length
        if length is None and "transfer-encoding" not in req.headers:
            return None
        if length is not None and length > self.max_body:
            raise PayloadTooLarge()
        if length is not None:
            return await req.stream.read()
        chunks = []
        size = 0
        async for chunk in req.stream:
            size += len(chunk)
            if size > self.max_body:
                raise PayloadTooLarge()
            chunks.append(chunk)
        return b"".join(chunks)

    async def _invoke(self, req: falcon.asgi.Request, function: str, sub_path: str, body: bytes | None,
                      request_id: str) -> dict[str, Any]:
        scope = req.scope
        now = time.time()
        timeout = self.functions[function].timeout
        deadline = now + timeout
        query_string = scope.get("query_string", b"").decode("latin-1")
        client = scope.get("client") or ("", 0)
        invocation = {
            "id": request_id,
            "function": function,
            "deadline_ms": int(deadline * 1000),
            "received_ms": int(now * 1000),
            "reply_to": self.reply_address,
            "method": scope["method"],
            "path": sub_path,
            "raw_path": req.path,
            "query_string": query_string,
            "query": [{"name": name, "value": value} for name, value in parse_qsl(query_string, keep_blank_values=True)],
            "headers": [{"name": name.decode("latin-1"), "value": value.decode("latin-1")} for name, value in scope["headers"]],
            "body": body,
            "source_ip": client[0] or "",
            "protocol": f"HTTP/{scope.get('http_version', '1.1')}",
        }
        future: asyncio.Future[dict[str, Any]] = self._loop.create_future()  # type: ignore[union-attr]
        self.pending[request_id] = future
        try:
            await self.transport.publish(function, self._invocation.encode(invocation), request_id=request_id, deadline=deadline)
        except TransportUnavailable as error:
            self.pending.pop(request_id, None)
            return _error(503, "unavailable", "transport unavailable", str(error), request_id)

        timer = self._loop.call_later(timeout + self.grace, _expire, future)  # type: ignore[union-attr]
        try:
            return await future
        except asyncio.TimeoutError:
            return _error(504, "timeout", "timeout",
                          f"function {function!r} did not answer within its timeout of {timeout:g}s", request_id)
        except TransportUnavailable as error:
            return _error(502, "unavailable", "transport failure",
                          f"the request may or may not have run: {error}", request_id)
        except ShuttingDown:
            return _error(503, "unavailable", "shutting down",
                          "the grappler stopped before the function answered; the request may or may not have run",
                          request_id)
        finally:
            timer.cancel()
            self.pending.pop(request_id, None)

    @staticmethod
    def _reply_json(resp: falcon.asgi.Response, status: int, document: dict[str, Any]) -> None:
        resp.status = status
        resp.content_type = "application/json"
        resp.data = json.dumps(document).encode("utf-8")


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(asyncio.TimeoutError())


def _error(status: int, kind: str, error: str, message: str, request_id: str) -> dict[str, Any]:
    return {
        "status": status,
        "headers": [{"name": "content-type", "value": "application/json"}],
        "body": json.dumps({"error": error, "message": message, "requestId": request_id}).encode("utf-8"),
        "error": kind,
    }


def create_app(config: Config, registry: Registry | None = None) -> RawHeaders:
    """Build the grappler's ASGI app for one worker process: the falcon app inside ``RawHeaders``."""
    registry = registry or load_registry()
    grappler = Grappler(config, registry)
    app = falcon.asgi.App(middleware=[grappler], cors_enable=False)
    app.req_options.strip_url_path_trailing_slash = False
    app.resp_options.default_media_type = None  # type: ignore[assignment]  # a function without Content-Type gets none
    app.add_sink(grappler, prefix="/")
    wrapper = RawHeaders(app)
    wrapper.grappler = grappler
    return wrapper
