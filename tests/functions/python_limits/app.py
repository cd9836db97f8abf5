"""Writes one message of ?size= characters, ?count= short records, or with ?warn=1 a warning."""

import warnings


def handler(event, context):
    query = event.get("queryStringParameters") or {}
    if "size" in query:
        print("x" * int(query["size"]))
    for number in range(int(query.get("count", "0"))):
        print("line", number)
    if query.get("warn") == "1":
        warnings.warn("careful: check the input")
    return {"statusCode": 200, "body": "done"}
