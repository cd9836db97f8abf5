"""Always fails, the way a buggy handler does. With ?exit=1 it calls sys.exit(3) instead of raising."""

import sys


def check_input(event):
    raise ValueError("something broke in the handler")


def handler(event, context):
    if (event.get("queryStringParameters") or {}).get("exit") == "1":
        sys.exit(3)
    check_input(event)
