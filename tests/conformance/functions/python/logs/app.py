"""Conformance scenario "logs": one log record per level, tagged with ?tag=, pausing in between."""

import logging
import time

logger = logging.getLogger("scenario")
logger.setLevel(logging.DEBUG)


def handler(event, context):
    tag = (event.get("queryStringParameters") or {}).get("tag")
    logger.debug("debug %s", tag)
    time.sleep(0.005)
    logger.info("info %s", tag)
    time.sleep(0.005)
    logger.warning("warn %s", tag)
    time.sleep(0.005)
    logger.error("error %s\nsecond line %s", tag, tag)
    return {"statusCode": 200, "body": tag}
