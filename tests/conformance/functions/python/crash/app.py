"""Conformance scenario "crash": the worker process exits with code 3 in the middle of the invocation."""

import os


def handler(event, context):
    os._exit(3)
