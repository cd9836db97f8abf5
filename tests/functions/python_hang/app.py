"""Never returns, unless ?fast=1."""

import threading


def handler(event, context):
    if (event.get("queryStringParameters") or {}).get("fast") == "1":
        return {"statusCode": 200, "body": "fast"}
    threading.Event().wait()
