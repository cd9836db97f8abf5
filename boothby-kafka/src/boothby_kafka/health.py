"""Probe the Kafka cluster on a timer and report when it becomes unreachable and reachable again."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable

from aiokafka.errors import KafkaError

from .topics import describe_error

logger = logging.getLogger(__name__)

Probe = Callable[[], Awaitable[object]]

CONFIRM_DELAY = 0.2
"""Seconds between a failed probe and the probe that confirms the failure."""


class BrokerMonitor:
    """Runs ``probe`` every ``interval`` seconds and tracks whether the cluster responds.

    aiokafka reconnects its own connections as soon as a broker responds again. This monitor only
    decides when to tell callers that the cluster is gone (``on_lost``) and back
    (``on_restored``), and it logs every probe made while the cluster is gone. A probe fails when it raises
    or gets no response within ``timeout`` seconds. The cluster counts as gone after two failed
    probes in a row, the second ``CONFIRM_DELAY`` seconds after the first, so that one dropped
    connection does not fail every waiting request.
    """

    def __init__(self, name: str, servers: str, probe: Probe, interval: float, timeout: float,
                 on_lost: Callable[[str], None] | None = None,
                 on_restored: Callable[[], None] | None = None) -> None:
        self.name = name
        self.servers = servers
        self.probe = probe
        self.interval = interval
        self.timeout = timeout
        self.on_lost = on_lost
        self.on_restored = on_restored
        self.connected = True
        self.last_error = ""
        self.outages = 0
        self._failures = 0
        self._lost_at = 0.0
        self._attempt = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"kafka-monitor-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def probe_soon(self) -> None:
        """Probe now instead of at the next tick, for example after a request failed."""
        self._wake.set()

    async def check(self) -> bool:
        """Probe once, update the state and return whether the cluster responded."""
        try:
            await asyncio.wait_for(self.probe(), self.timeout)
        except (KafkaError, OSError, asyncio.TimeoutError) as error:
            if isinstance(error, asyncio.TimeoutError):
                self.last_error = f"no response within {self.timeout:g}s"
            else:
                self.last_error = describe_error(error)
            self._failed()
            return False

        self._failures = 0
        if not self.connected:
            self._attempt += 1
            self.connected = True
            logger.warning("kafka %s: reconnected to %s after %d attempts in %.1fs",
                           self.name, self.servers, self._attempt, time.monotonic() - self._lost_at)
            if self.on_restored is not None:
                self.on_restored()
        return True

    def _failed(self) -> None:
        self._failures += 1
        if not self.connected:
            self._attempt += 1
            logger.warning("kafka %s: reconnect attempt %d to %s failed after %.1fs: %s",
                           self.name, self._attempt, self.servers, time.monotonic() - self._lost_at, self.last_error)
            return
        if self._failures == 1:
            logger.info("kafka %s: probing %s failed (%s); probing again in %gs",
                        self.name, self.servers, self.last_error, CONFIRM_DELAY)
            return

        self.connected = False
        self.outages += 1
        self._lost_at = time.monotonic()
        self._attempt = 0
        logger.warning("kafka %s: lost the connection to %s: %s; probing every %gs until it answers",
                       self.name, self.servers, self.last_error, self.interval)
        if self.on_lost is not None:
            self.on_lost(self.last_error)

    async def _run(self) -> None:
        while True:
            delay = CONFIRM_DELAY if self.connected and self._failures == 1 else self.interval
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.check()
            except Exception:
                # The monitor must outlive a bug in one probe, or the grappler would never learn
                # that the cluster is back.
                logger.exception("kafka %s: probing %s failed unexpectedly", self.name, self.servers)
