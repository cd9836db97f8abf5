"""Run a conformance test's coroutine on a fresh event loop and bound every wait in time."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable, Coroutine, TypeVar

T = TypeVar("T")

logger = logging.getLogger(__name__)


def run_coroutine(coroutine: Coroutine[Any, Any, T], timeout: float, use_uvloop: bool = True) -> T:
    """Run ``coroutine`` on a new event loop, failing the test when it takes over ``timeout`` seconds.

    The loop is uvloop when ``use_uvloop`` is set and uvloop is installed, as in Boothby's own
    processes. Tasks still running at the end are cancelled when the loop closes.
    """
    loop_factory = None
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(within(coroutine, timeout, "the test"))


async def run_then_close(body: Awaitable[None], close: Callable[[], Awaitable[None]]) -> None:
    """Await ``body``, then ``close()``, also when ``body`` fails or is cancelled.

    When both fail, the error of ``close()`` is logged and the error of ``body`` is raised,
    because the first failure is the one that explains the test.
    """
    try:
        await body
    except BaseException:
        try:
            await close()
        except Exception:
            logger.exception("cleaning up after a failed conformance test failed too")
        raise
    await close()


async def within(awaitable: Awaitable[T], seconds: float, description: str) -> T:
    """Await ``awaitable`` for at most ``seconds``; raise ``AssertionError`` naming ``description`` when time runs out.

    A ``TimeoutError`` raised by the awaited code itself propagates unchanged, so that a
    plugin's own timeout is not reported as the suite's.
    """
    scope = asyncio.timeout(seconds)
    try:
        async with scope:
            return await awaitable
    except TimeoutError:
        if scope.expired():
            raise AssertionError(f"{description} did not finish within {seconds:g} s") from None
        raise


async def wait_until(condition: Callable[[], bool], seconds: float, description: str, interval: float = 0.01) -> None:
    """Poll ``condition`` until it is true; raise ``AssertionError`` naming ``description`` after ``seconds``.

    Polling, rather than an event, also notices state changed from another thread, which is
    how a plugin that breaks the event-loop-thread rule is still reported by its own check.
    """
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {seconds:g} s waiting for {description}")
        await asyncio.sleep(interval)


async def stays_false(condition: Callable[[], bool], seconds: float, interval: float = 0.01) -> bool:
    """Return True when ``condition`` stays false for ``seconds``, False as soon as it becomes true."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return False
        await asyncio.sleep(interval)
    return not condition()
