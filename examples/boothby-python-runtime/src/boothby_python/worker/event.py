"""The handler's arguments: the API Gateway HTTP API (payload format 2.0) event and the context object."""

from __future__ import annotations

import base64
import os
import time
from typing import Any

# Content types whose bodies reach the handler as text, like the Node runtime: text/*, JSON, XML,
# form data and JavaScript, and any +json or +xml suffix. Other bodies arrive base64-encoded.
TEXT_TYPES = frozenset({
    "application/json",
    "application/xml",
    "application/javascript",
    "application/x-www-form-urlencoded",
})
TEXT_SUFFIXES = ("+json", "+xml")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def is_text_type(content_type: str | None) -> bool:
    """Tell whether a body of ``content_type`` is passed to the handler as text."""
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type.startswith("text/") or media_type in TEXT_TYPES or media_type.endswith(TEXT_SUFFIXES)


def format_request_time(epoch_ms: int) -> str:
    """Format a time as API Gateway's ``requestContext.time``, such as ``04/Dec/2026:21:02:24 +0000``.

    The month comes from a fixed table so that the worker's locale cannot change it.
    """
    moment = time.gmtime(epoch_ms / 1000)
    return f"{moment.tm_mday:02d}/{MONTHS[moment.tm_mon - 1]}/{moment.tm_year}:{time.strftime('%H:%M:%S', moment)} +0000"


def group_pairs(pairs: list[dict[str, str]]) -> dict[str, list[str]]:
    """Group name/value pairs by name, keeping the first-seen order of names and every value."""
    grouped: dict[str, list[str]] = {}
    for pair in pairs:
        grouped.setdefault(pair["name"], []).append(pair["value"])
    return grouped


def parse_cookies(values: list[str]) -> list[str]:
    """Split ``Cookie`` header values into single ``name=value`` cookies, dropping empty ones."""
    cookies = []
    for value in values:
        cookies += [cookie.strip() for cookie in value.split(";") if cookie.strip()]
    return cookies


def build_event(invocation: dict[str, Any]) -> dict[str, Any]:
    """Build the payload format 2.0 event of one invocation, with the same fields as the Node runtime.

    Besides the format's own fields the event has ``multiValueHeaders`` and
    ``multiValueQueryStringParameters`` with every value of a repeated name, while ``headers``
    and ``queryStringParameters`` join repeated values with commas. ``cookies``,
    ``queryStringParameters``, ``pathParameters`` and ``body`` are left out when empty or absent.
    """
    multi_headers = group_pairs(invocation["headers"])
    headers = {name: ",".join(values) for name, values in multi_headers.items() if name != "cookie"}
    domain_name = headers.get("host") or "localhost"
    path = invocation["raw_path"]

    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": invocation["query_string"],
    }
    cookies = parse_cookies(multi_headers.get("cookie", []))
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    event["multiValueHeaders"] = multi_headers

    if invocation["query"]:
        multi_query = group_pairs(invocation["query"])
        event["queryStringParameters"] = {name: ",".join(values) for name, values in multi_query.items()}
        event["multiValueQueryStringParameters"] = multi_query

    event["requestContext"] = {
        "accountId": "boothby",
        "apiId": "boothby",
        "domainName": domain_name,
        "domainPrefix": domain_name.split(".", 1)[0],
        "http": {
            "method": invocation["method"],
            "path": path,
            "protocol": invocation["protocol"],
            "sourceIp": invocation["source_ip"],
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": invocation["id"],
        "routeKey": "$default",
        "stage": "$default",
        "time": format_request_time(invocation["received_ms"]),
        "timeEpoch": invocation["received_ms"],
    }

    # The path below the function's mount point, like an API Gateway {proxy+} path parameter.
    proxy = invocation["path"].lstrip("/")
    if proxy:
        event["pathParameters"] = {"proxy": proxy}

    body = invocation["body"]
    base64_encoded = False
    if body is not None:
        text = None
        if is_text_type(headers.get("content-type")):
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                text = None
        if text is None:
            text = base64.b64encode(body).decode("ascii")
            base64_encoded = True
        event["body"] = text
    event["isBase64Encoded"] = base64_encoded
    return event


class LambdaContext:
    """The ``context`` argument, with the attribute names of AWS Lambda's Python runtime."""

    def __init__(self, invocation: dict[str, Any], log_stream_name: str) -> None:
        self.aws_request_id: str = invocation["id"]
        self.function_name: str = os.environ.get("BOOTHBY_FUNCTION_NAME", invocation["function"])
        self.function_version: str = os.environ.get("BOOTHBY_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = f"arn:boothby:lambda:local:function:{self.function_name}"
        # A string, as in AWS Lambda's Python runtime and in the Node runtime's memoryLimitInMB.
        self.memory_limit_in_mb: str = os.environ.get("BOOTHBY_MEMORY_MB", "")
        self.log_group_name = f"/boothby/{self.function_name}"
        self.log_stream_name = log_stream_name
        self.identity = None
        self.client_context = None
        self.deadline_ms: int = invocation["deadline_ms"]

    def get_remaining_time_in_millis(self) -> int:
        """Return the milliseconds left until the invocation's deadline, never below zero."""
        return max(0, self.deadline_ms - int(time.time() * 1000))

    def __repr__(self) -> str:
        return f"LambdaContext(aws_request_id={self.aws_request_id!r}, function_name={self.function_name!r})"


def log_stream_name(started: float, pid: int) -> str:
    """Name this worker's log stream as the Node runtime does: ``YYYY/MM/DD/[$LATEST]PID``."""
    day = time.strftime("%Y/%m/%d", time.gmtime(started))
    return f"{day}/[$LATEST]{pid}"
