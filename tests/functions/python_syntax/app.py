"""Fails to load: the handler module has a syntax error on purpose."""


def handler(event, context)
    return {"statusCode": 200}
