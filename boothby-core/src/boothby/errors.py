"""The exceptions Boothby raises, in one small hierarchy."""

from __future__ import annotations


class BoothbyError(Exception):
    """Base class of every error Boothby raises on purpose."""


class ConfigError(BoothbyError):
    """The configuration is invalid; ``problems`` lists one message per invalid key."""

    def __init__(self, problems: list[str], path: str | None = None) -> None:
        self.problems = problems
        self.path = path
        where = f" in {path}" if path else ""
        if len(problems) == 1:
            message = f"invalid configuration{where}: {problems[0]}"
        else:
            lines = "\n".join(f"  - {problem}" for problem in problems)
            message = f"invalid configuration{where}:\n{lines}"
        super().__init__(message)


class PluginError(BoothbyError):
    """A plugin could not be loaded, or two plugins registered the same backend name."""

    def __init__(self, message: str, plugin: str | None = None) -> None:
        self.plugin = plugin
        super().__init__(message)


class UnknownBackendError(BoothbyError):
    """The configuration names a transport, runtime or log sink that no installed plugin provides."""

    def __init__(self, kind: str, name: str, installed: list[str], distribution: str | None) -> None:
        self.kind = kind
        self.name = name
        self.installed = installed
        self.distribution = distribution
        available = ", ".join(sorted(installed)) or "none"
        if distribution:
            hint = f"install the distribution that provides it: pip install {distribution}"
        else:
            hint = "install the plugin distribution that provides it, or fix the name"
        super().__init__(f"unknown {kind} {name!r}; installed {kind}s: {available}; {hint}")


class CodecError(BoothbyError):
    """A message could not be decoded: wrong marker, unknown schema fingerprint or corrupt data."""


class TransportError(BoothbyError):
    """A transport failed to deliver a message; ``backend`` names the transport."""

    def __init__(self, message: str, backend: str | None = None) -> None:
        self.backend = backend
        super().__init__(message)


class TransportUnavailable(TransportError):
    """The transport cannot reach its broker or peer right now; callers may retry later."""


class RuntimeUnavailable(BoothbyError):
    """A runtime cannot start workers on this machine, for example because its interpreter is missing."""

    def __init__(self, message: str, runtime: str | None = None) -> None:
        self.runtime = runtime
        super().__init__(message)


class WorkerError(BoothbyError):
    """A worker process failed: it exited, broke the RPC protocol or failed to start."""

    def __init__(self, message: str, function: str | None = None, pid: int | None = None) -> None:
        self.function = function
        self.pid = pid
        super().__init__(message)


class WorkerStartError(WorkerError):
    """A worker failed while loading its function; ``error`` contains what the worker reported."""

    def __init__(self, message: str, function: str | None = None, pid: int | None = None, error: str = "") -> None:
        self.error = error
        super().__init__(message, function=function, pid=pid)
