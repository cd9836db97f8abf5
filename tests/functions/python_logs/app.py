"""Writes one record per kind of output, each tagged with ?tag=, with pauses in between.

With ?sleep= milliseconds the pauses are longer, so that concurrent invocations interleave.
"""

import logging
import sys
import time

logger = logging.getLogger("python_logs")


def handler(event, context):
    query = event.get("queryStringParameters") or {}
    tag = query.get("tag", "none")
    pause = int(query.get("sleep", "5")) / 1000
    print("print", tag)
    time.sleep(pause)
    logger.info("info %s", tag)
    logger.warning("warn %s", tag)
    time.sleep(pause)
    print(f"error {tag}\nsecond line {tag}", file=sys.stderr)
    logger.debug("debug %s is below the root level", tag)
    return {"statusCode": 200, "body": tag}
