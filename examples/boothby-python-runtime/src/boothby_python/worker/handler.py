"""Load the function's handler and run one invocation of it."""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import inspect
import os
import sys
from concurrent.futures import Executor
from typing import Any, Callable

from .event import LambdaContext, build_event
from .logs import LogCapture, current_capture
from .result import InvalidResult, build_response, function_error


class HandlerLoadError(Exception):
    """The handler could not be found. The message is the error text of the readiness line."""


def load_handler(function_dir: str, spec: str) -> Callable[..., Any]:
    """Import the module of ``spec`` (``FILE.FUNCTION``) from ``function_dir`` and return the function.

    ``FILE`` is a path relative to the function folder without ``.py`` (``app``, ``src/app``).
    Dots in it separate packages, as in AWS Lambda (``pkg.app.handler`` is ``pkg/app.py``).
    The function folder must already be first on ``sys.path``. Errors raised while the module
    runs (a ``SyntaxError``, a failing import) propagate unchanged.
    """
    file_part, _, attribute = spec.rpartition(".")
    if not file_part or not attribute:
        raise HandlerLoadError(f"Runtime.InvalidHandler: handler {spec!r} is not FILE.FUNCTION, for example app.handler")
    relative_path = file_part.replace(".", "/").strip("/")
    module_name = relative_path.replace("/", ".")
    candidates = [os.path.join(function_dir, relative_path + ".py"), os.path.join(function_dir, relative_path, "__init__.py")]
    if not any(os.path.isfile(candidate) for candidate in candidates):
        raise HandlerLoadError(f"Runtime.ImportModuleError: {relative_path}.py not found in the function folder {function_dir}")

    # The worker imported its own modules (json, logging, asyncio, ...) before the function's.
    loaded = sys.modules.get(module_name)
    loaded_file = getattr(loaded, "__file__", None) or ""
    if loaded is not None and not os.path.abspath(loaded_file).startswith(os.path.abspath(function_dir) + os.sep):
        raise HandlerLoadError(
            f"Runtime.ImportModuleError: module name {module_name!r} is already taken by "
            f"{loaded_file or 'a built-in module'}; rename {relative_path}.py"
        )

    module = importlib.import_module(module_name)
    handler = getattr(module, attribute, None)
    if handler is None:
        raise HandlerLoadError(f"Runtime.HandlerNotFound: {relative_path}.py has no attribute {attribute!r}")
    if not callable(handler):
        raise HandlerLoadError(
            f"Runtime.HandlerNotFound: {relative_path}.{attribute} is a {type(handler).__name__}, not a function"
        )
    return handler


def is_async_handler(handler: Callable[..., Any]) -> bool:
    """Tell whether calling ``handler`` returns a coroutine: ``async def`` functions and objects."""
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(getattr(handler, "__call__", None))


def call_sync(handler: Callable[..., Any], event: dict[str, Any], context: LambdaContext) -> tuple[Any, dict[str, Any] | None]:
    """Call a plain handler in an executor thread and return ``(response or awaitable, error)``.

    The response is built here, off the event loop, because JSON-encoding a large result takes time.
    """
    try:
        value = handler(event, context)
    except BaseException as error:  # noqa: BLE001 - SystemExit from a handler is its error, not the worker's
        return None, function_error(error)
    if inspect.isawaitable(value):
        return value, None
    try:
        return build_response(value), None
    except InvalidResult as error:
        return None, function_error(error)


class Invoker:
    """The runner of one handler's invocations: ``async def`` handlers on the event loop, others in threads."""

    def __init__(self, handler: Callable[..., Any], executor: Executor, log_stream_name: str) -> None:
        self.handler = handler
        self.executor = executor
        self.log_stream_name = log_stream_name
        self.is_async = is_async_handler(handler)

    async def invoke(self, invocation: dict[str, Any]) -> dict[str, Any]:
        """Run the handler for one invocation and return the ``WorkerResult`` record.

        Call this in its own task: the log capture lives in the task's context, and threads
        started for the handler get a copy of that context.
        """
        capture = LogCapture()
        current_capture.set(capture)
        event = build_event(invocation)
        context = LambdaContext(invocation, self.log_stream_name)

        if self.is_async:
            response, error = await self._await_response(lambda: self.handler(event, context))
        else:
            loop = asyncio.get_running_loop()
            call = contextvars.copy_context().run
            response, error = await loop.run_in_executor(self.executor, call, call_sync, self.handler, event, context)
            if error is None and inspect.isawaitable(response):
                awaitable = response
                response, error = await self._await_response(lambda: awaitable)

        if error is not None:
            # The deflector turns ``error`` into a 500 response and logs it as the invocation's last record.
            response = {"status": 500, "headers": [], "body": None}
        records, dropped = capture.close()
        return {**response, "error": error, "logs": records, "logs_dropped": dropped}

    @staticmethod
    async def _await_response(start: Callable[[], Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """Await what ``start()`` returns and build the response. ``start`` runs inside the ``try``."""
        try:
            value = await start()
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # noqa: BLE001 - see call_sync
            return None, function_error(error)
        try:
            return build_response(value), None
        except InvalidResult as error:
            return None, function_error(error)
