"""Conformance scenario "throws": the handler fails with a known message."""


def handler(event, context):
    raise RuntimeError("boothby conformance: thrown on purpose")
