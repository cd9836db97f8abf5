"""Responds with the status code in ?code=, two Set-Cookie lines and a repeated header.

?mode= returns other shapes instead: plain values, and results that break the rules.
"""


def handler(event, context):
    query = event.get("queryStringParameters") or {}
    mode = query.get("mode")
    if mode == "plain":
        return ["a", 1, None]
    if mode == "none":
        return None
    if mode == "bad-status":
        return {"statusCode": 99, "body": "never sent"}
    if mode == "bad-body":
        return {"statusCode": 200, "body": {"a": 1}}
    if mode == "not-json":
        return {"value": object()}
    code = int(query.get("code", "200"))
    return {
        "statusCode": code,
        "headers": {"x-status": code, "content-type": "text/plain", "x-skipped": None},
        "multiValueHeaders": {"x-multi": ["one", "two"]},
        "cookies": ["a=1; Path=/", "b=2; Path=/; HttpOnly"],
        "body": "" if code == 204 else f"status {code}",
    }
