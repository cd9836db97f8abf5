"""Writes one message of ?size= characters, or ?count= short records, to test the log limits."""


def handler(event, context):
    query = event.get("queryStringParameters") or {}
    if "size" in query:
        print("x" * int(query["size"]))
    for number in range(int(query.get("count", "0"))):
        print("line", number)
    return {"statusCode": 200, "body": "done"}
