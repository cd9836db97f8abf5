"""An async handler: logs before and after an await of ?ms= milliseconds, tagged with ?tag=."""

import asyncio
import logging
import time


async def handler(event, context):
    query = event.get("queryStringParameters") or {}
    tag = query.get("tag", "none")
    started = time.monotonic()
    print("start", tag)
    await asyncio.sleep(int(query.get("ms", "200")) / 1000)
    logging.warning("end %s", tag)
    return {"tag": tag, "started": started, "finished": time.monotonic()}
