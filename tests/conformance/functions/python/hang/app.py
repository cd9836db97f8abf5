"""Conformance scenario "hang": the handler never returns."""

import time


def handler(event, context):
    while True:
        time.sleep(60)
