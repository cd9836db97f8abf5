"""The Celery contender: one task that returns its argument, with Redis as broker and result backend.

The harness starts the worker with ``celery -A bench.celery_app worker`` and the HTTP front
(``bench/celery_front.py``), both with the repository root on ``PYTHONPATH`` and the Redis URL in
``BENCH_CELERY_REDIS_URL``.
"""

from __future__ import annotations

import os

from celery import Celery

REDIS_URL = os.environ.get("BENCH_CELERY_REDIS_URL", "redis://127.0.0.1:6379/1")
QUEUE = os.environ.get("BENCH_CELERY_QUEUE", "boothby-bench")

app = Celery("boothby_bench", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    task_default_queue=QUEUE,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    # Results are read once, right away; expiring them keeps the benchmark from filling Redis.
    result_expires=300,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.echo")
def echo(value: str) -> str:
    return value
