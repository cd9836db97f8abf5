"""Conformance scenario "pid": responds with the id of the process running the function."""

import os


def handler(event, context):
    return {"statusCode": 200, "body": str(os.getpid())}
