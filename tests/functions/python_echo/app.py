"""Returns what the function saw of the request as JSON; ?raw=1 echoes the body bytes instead."""

import base64
import os


def handler(event, context):
    query = event.get("queryStringParameters") or {}
    if query.get("raw") == "1":
        body = event.get("body", "")
        data = base64.b64decode(body) if event["isBase64Encoded"] else body.encode("utf-8")
        return {"statusCode": 200, "headers": {"content-type": "application/octet-stream"}, "body": data}
    return {
        "event": event,
        "hasBody": "body" in event,
        "context": {
            "aws_request_id": context.aws_request_id,
            "function_name": context.function_name,
            "function_version": context.function_version,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "log_group_name": context.log_group_name,
            "log_stream_name": context.log_stream_name,
            "remaining_ms": context.get_remaining_time_in_millis(),
        },
        "pid": os.getpid(),
    }
