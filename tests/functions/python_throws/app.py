"""Always fails, the way a buggy handler does."""


def check_input(event):
    raise ValueError("something broke in the handler")


def handler(event, context):
    check_input(event)
