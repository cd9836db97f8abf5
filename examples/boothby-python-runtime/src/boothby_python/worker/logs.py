"""Capture of print() and logging output per invocation, within the limits of the worker protocol."""

from __future__ import annotations

import contextvars
import io
import logging
import sys
import threading
import time
from typing import Any, TextIO

# The same limits as the Node runtime: at most 1000 records per invocation, and each message
# cut to 64 KiB of UTF-8, followed by a marker with the number of bytes cut.
MAX_RECORDS = 1000
MAX_MESSAGE_BYTES = 64 * 1024

current_capture: contextvars.ContextVar[LogCapture | None] = contextvars.ContextVar("boothby_log_capture", default=None)


def truncate_message(message: str) -> str:
    """Encode ``message`` as UTF-8 (lone surrogates replaced) and cut it to ``MAX_MESSAGE_BYTES``."""
    encoded = message.encode("utf-8", "replace")
    if len(encoded) <= MAX_MESSAGE_BYTES:
        return encoded.decode("utf-8")
    head = encoded[:MAX_MESSAGE_BYTES].decode("utf-8", "ignore")
    cut = len(encoded) - len(head.encode("utf-8"))
    return f"{head}... [truncated {cut} bytes]"


class LogCapture:
    """The log records of one invocation, in the order they were written, up to ``MAX_RECORDS``.

    Threads of a handler may write at once, so every change happens under a lock. After
    ``close()`` the capture takes nothing: late output goes to the worker's own streams.
    """

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.dropped = 0
        self._pending: dict[str, str] = {}
        self._closed = False
        self._lock = threading.Lock()

    def add(self, level: str, message: str, timestamp_ms: float | None = None) -> bool:
        """Append one record, or return ``False`` when the capture is closed and took nothing."""
        with self._lock:
            if self._closed:
                return False
            self._append(level, message, timestamp_ms)
            return True

    def write(self, level: str, text: str) -> bool:
        """Add stream output: each write that ends a line closes one record, as one print() call does."""
        with self._lock:
            if self._closed:
                return False
            pending = self._pending.get(level, "") + text
            if pending.endswith("\n"):
                self._append(level, pending[:-1], None)
                pending = ""
            self._pending[level] = pending
            return True

    def flush(self, level: str) -> None:
        """Close the pending partial line of ``level`` as a record."""
        with self._lock:
            if not self._closed:
                self._flush_pending(level)

    def close(self) -> tuple[list[dict[str, Any]], int]:
        """Flush partial lines, stop capturing and return the records and the dropped count."""
        with self._lock:
            for level in list(self._pending):
                self._flush_pending(level)
            self._closed = True
            return self.records, self.dropped

    def _flush_pending(self, level: str) -> None:
        pending = self._pending.pop(level, "")
        if pending:
            self._append(level, pending, None)

    def _append(self, level: str, message: str, timestamp_ms: float | None) -> None:
        if len(self.records) >= MAX_RECORDS:
            self.dropped += 1
            return
        if timestamp_ms is None:
            timestamp_ms = time.time() * 1000
        self.records.append({"timestamp_ms": timestamp_ms, "level": level, "message": truncate_message(message)})


class CapturedStream(io.TextIOBase):
    """A ``sys.stdout`` or ``sys.stderr`` replacement that sends text to the current invocation's capture.

    Outside an invocation (module import, threads that did not copy the context), text goes to the
    original stream, which the deflector collects into its own log.
    """

    def __init__(self, original: TextIO, level: str) -> None:
        super().__init__()
        self.original = original
        self.level = level

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        capture = current_capture.get()
        if capture is None or not capture.write(self.level, text):
            self.original.write(text)
            self.original.flush()
        return len(text)

    def flush(self) -> None:
        capture = current_capture.get()
        if capture is not None:
            capture.flush(self.level)
        self.original.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        # Bytes written to the descriptor itself bypass the capture and reach the deflector's log.
        return self.original.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return "strict"

    @property
    def buffer(self) -> Any:
        return self.original.buffer


def level_name(levelno: int) -> str:
    """Map a ``logging`` level number to the protocol's levels: debug, info, warn or error."""
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warn"
    if levelno >= logging.INFO:
        return "info"
    return "debug"


class InvocationLogHandler(logging.Handler):
    """A root-logger handler that stores each record in the current invocation's capture."""

    def __init__(self, fallback: TextIO) -> None:
        super().__init__()
        self.fallback = fallback
        self.setFormatter(logging.Formatter("%(message)s"))
        self._fallback_formatter = logging.Formatter(logging.BASIC_FORMAT)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            capture = current_capture.get()
            if capture is not None and capture.add(level_name(record.levelno), self.format(record), record.created * 1000):
                return
            self.fallback.write(self._fallback_formatter.format(record) + "\n")
            self.fallback.flush()
        except Exception:  # noqa: BLE001 - logging's own contract: report and carry on
            self.handleError(record)


def install(root_level: int = logging.INFO) -> None:
    """Route ``sys.stdout`` (info), ``sys.stderr`` (error), ``warnings`` (warn) and the root logger to captures."""
    original_stdout, original_stderr = sys.stdout, sys.stderr
    sys.stdout = CapturedStream(original_stdout, "info")
    sys.stderr = CapturedStream(original_stderr, "error")

    root = logging.getLogger()
    root.addHandler(InvocationLogHandler(original_stderr))
    root.setLevel(root_level)
    logging.captureWarnings(True)
