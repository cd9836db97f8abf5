"""Turn what a handler returned or raised into the fields of a ``WorkerResult``."""

from __future__ import annotations

import base64
import binascii
import json
import os
import traceback
from types import TracebackType
from typing import Any

INVALID_RESULT = "Runtime.InvalidResult"
WORKER_DIR = os.path.dirname(os.path.abspath(__file__))


class InvalidResult(Exception):
    """The handler returned a value that cannot become an HTTP response."""

    def __init__(self, message: str, trace: list[str] | None = None) -> None:
        super().__init__(message)
        self.trace = trace or []


def header_value(value: Any) -> str:
    """Render one header value as text, writing booleans as JavaScript does (``true``, ``false``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def header_pairs(headers: Any, field: str) -> list[dict[str, str]]:
    """Flatten a ``headers`` or ``multiValueHeaders`` dict into ordered pairs.

    A ``None`` value is left out, and a list or tuple value gives one pair per item.
    """
    if headers is None:
        return []
    if not isinstance(headers, dict):
        raise InvalidResult(f"{field} must be a dict of header names to values, got {type(headers).__name__}: {headers!r:.200}")
    pairs = []
    for name, value in headers.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        pairs += [{"name": str(name), "value": header_value(item)} for item in values if item is not None]
    return pairs


def status_code(value: Any) -> int:
    """Check that ``statusCode`` is a whole number from 100 to 599 and return it as an int."""
    number = int(value) if isinstance(value, float) and value.is_integer() else value
    if not isinstance(number, int) or not 100 <= number <= 599:
        raise InvalidResult(f"statusCode must be an integer from 100 to 599, got {value!r}")
    return number


def response_body(body: Any, base64_encoded: Any) -> bytes | None:
    """Return the response body bytes: text as UTF-8, base64 text decoded, bytes as they are."""
    if body is None:
        return None
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    if not isinstance(body, str):
        raise InvalidResult(f"body must be a str or bytes, got {type(body).__name__}: {body!r:.200}")
    if not base64_encoded:
        return body.encode("utf-8", "replace")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as error:
        raise InvalidResult("body is marked isBase64Encoded but is not valid base64") from error


def has_status_code(value: Any) -> bool:
    """Tell whether ``value`` is a response object: a dict whose ``statusCode`` is a number."""
    if not isinstance(value, dict):
        return False
    code = value.get("statusCode")
    return isinstance(code, (int, float)) and not isinstance(code, bool)


def build_response(value: Any) -> dict[str, Any]:
    """Turn a handler's return value into ``status``, ``headers`` and ``body``.

    A dict with a numeric ``statusCode`` sets the response: ``headers`` first, then
    ``multiValueHeaders``, then one ``set-cookie`` per item of ``cookies``. Any other value,
    ``None`` included, becomes a 200 response with the value as JSON.
    """
    if not has_status_code(value):
        try:
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError, RecursionError) as error:
            raise InvalidResult(
                f"the handler's result could not be serialised as JSON: {error}",
                [f"Caused by: {type(error).__name__}: {error}"],
            ) from error
        return {
            "status": 200,
            "headers": [{"name": "content-type", "value": "application/json"}],
            "body": text.encode("utf-8", "replace"),
        }

    status = status_code(value["statusCode"])
    headers = header_pairs(value.get("headers"), "headers")
    headers += header_pairs(value.get("multiValueHeaders"), "multiValueHeaders")
    cookies = value.get("cookies")
    if cookies is not None:
        if not isinstance(cookies, (list, tuple)) or not all(isinstance(cookie, str) for cookie in cookies):
            raise InvalidResult(f"cookies must be a list of strings, got {cookies!r:.200}")
        headers += [{"name": "set-cookie", "value": cookie} for cookie in cookies]
    return {"status": status, "headers": headers, "body": response_body(value.get("body"), value.get("isBase64Encoded"))}


def first_function_frame(trace: TracebackType | None) -> TracebackType | None:
    """Skip the traceback entries of this worker's own modules, so the trace starts in the function."""
    while trace is not None and os.path.dirname(os.path.abspath(trace.tb_frame.f_code.co_filename)) == WORKER_DIR:
        trace = trace.tb_next
    return trace


def function_error(error: BaseException) -> dict[str, Any]:
    """Describe an exception raised by the handler as the protocol's ``FunctionError`` record."""
    if isinstance(error, InvalidResult):
        return {"type": INVALID_RESULT, "message": str(error), "trace": error.trace}
    formatted = traceback.TracebackException(type(error), error, first_function_frame(error.__traceback__), compact=True)
    trace = "".join(formatted.format()).splitlines()
    return {"type": type(error).__name__, "message": str(error), "trace": trace}
