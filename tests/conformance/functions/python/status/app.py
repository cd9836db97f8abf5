"""Conformance scenario "status": the status from ?code=, a repeated header and two cookies."""


def handler(event, context):
    code = int((event.get("queryStringParameters") or {})["code"])
    return {
        "statusCode": code,
        "multiValueHeaders": {"x-multi": ["one", "two"]},
        "cookies": ["a=1; Path=/", "b=2; Path=/; HttpOnly"],
        "body": f"status {code}",
    }
