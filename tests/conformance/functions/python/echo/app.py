"""Conformance scenario "echo": responds with the request body byte for byte, or no body for none."""

import base64


def handler(event, context):
    response = {"statusCode": 200, "headers": {"content-type": "application/octet-stream"}}
    if "body" not in event:
        return response
    body = base64.b64decode(event["body"]) if event["isBase64Encoded"] else event["body"].encode("utf-8")
    return {**response, "body": base64.b64encode(body).decode("ascii"), "isBase64Encoded": True}
