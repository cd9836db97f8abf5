"""Load the TOML configuration, apply environment overrides and validate every key."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError

ENV_PREFIX = "BOOTHBY_"
DEFAULT_CONFIG_FILE = "boothby.toml"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {None: 1, "b": 1, "kb": 1024, "kib": 1024, "mb": 1024**2, "mib": 1024**2, "gb": 1024**3, "gib": 1024**3}
_DURATION_UNITS = {None: 1.0, "s": 1.0, "ms": 0.001, "m": 60.0, "h": 3600.0}
_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class FunctionConfig:
    """One function: where its code is, how to call it and how many workers serve it."""

    name: str
    source: Path
    handler: str
    runtime: str = "node"
    timeout: float = 30.0
    workers: int = 1
    max_workers: int = 1
    idle_timeout: float = 60.0
    max_invocations: int = 0
    max_age: float = 0.0
    concurrency: int = 1
    memory_mb: int = 128
    environment: Mapping[str, str] = field(default_factory=dict)
    allow_child_processes: bool = False
    allow_worker_threads: bool = False


@dataclass(frozen=True)
class GrapplerConfig:
    """The HTTP edge: where it listens and how it bounds requests."""

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    max_body_size: int = 6 * 1024 * 1024
    reply_grace: float = 0.25
    graceful_timeout: float = 30.0

    @property
    def bind(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class DeflectorConfig:
    """The worker supervisor: start-up, shutdown and log shipping bounds."""

    start_timeout: float = 30.0
    shutdown_grace: float = 30.0
    log_buffer: int = 10000
    work_dir: Path | None = None
    worker_id_base: int = 100000
    max_open_files: int = 1024
    max_processes: int = 64


@dataclass(frozen=True)
class Config:
    """The whole validated configuration."""

    transport: str = "embedded"
    log_sinks: tuple[str, ...] = ("stdout",)
    grappler: GrapplerConfig = field(default_factory=GrapplerConfig)
    deflector: DeflectorConfig = field(default_factory=DeflectorConfig)
    functions: Mapping[str, FunctionConfig] = field(default_factory=dict)
    transport_settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    log_sink_settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    runtime_settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    path: Path | None = None

    def settings_for_transport(self, name: str | None = None) -> Mapping[str, Any]:
        """Return the ``[transport.<name>]`` table, empty when absent."""
        return self.transport_settings.get(name or self.transport, {})

    @property
    def max_timeout(self) -> float:
        """The maximum function timeout, in seconds."""
        return max((function.timeout for function in self.functions.values()), default=30.0)


def parse_duration(value: Any) -> float:
    """Parse ``"30s"``, ``"500ms"``, ``"2m"``, ``"1h"`` or a number of seconds into seconds.

    Raises ``ValueError`` for anything else.
    """
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(value)
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError(value)
    return seconds


def parse_size(value: Any) -> int:
    """Parse ``"128MB"``, ``"512KiB"`` or a number of bytes; KB, MB and GB are powers of 1024.

    Raises ``ValueError`` for anything else.
    """
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.match(str(value))
        if not match:
            raise ValueError(value)
        unit = match.group(2).lower() if match.group(2) else None
        size = int(float(match.group(1)) * _SIZE_UNITS[unit])
    if size <= 0:
        raise ValueError(value)
    return size


class _Checker:
    """Collects every problem of one configuration so that a user sees them all at once."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def table(self, data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = data.get(key.rsplit(".", 1)[-1], {})
        if isinstance(value, Mapping):
            return value
        self.problems.append(f"{key} must be a table ([{key}]), got {value!r}")
        return {}

    def unknown(self, data: Mapping[str, Any], prefix: str, allowed: set[str]) -> None:
        for key in data:
            if key not in allowed:
                self.problems.append(
                    f"unknown key {prefix}.{key}; allowed keys in [{prefix}]: {', '.join(sorted(allowed))}"
                )

    def string(self, data: Mapping[str, Any], key: str, prefix: str, default: str) -> str:
        value = data.get(key, default)
        if isinstance(value, str) and value:
            return value
        self.problems.append(f"{prefix}.{key} = {value!r} is invalid: expected a non-empty string")
        return default

    def integer(self, data: Mapping[str, Any], key: str, prefix: str, default: int, minimum: int = 1) -> int:
        value = data.get(key, default)
        if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
            return value
        self.problems.append(f"{prefix}.{key} = {value!r} is invalid: expected a whole number >= {minimum}")
        return default

    def boolean(self, data: Mapping[str, Any], key: str, prefix: str, default: bool) -> bool:
        value = data.get(key, default)
        if isinstance(value, bool):
            return value
        self.problems.append(f"{prefix}.{key} = {value!r} is invalid: expected true or false")
        return default

    def duration(self, data: Mapping[str, Any], key: str, prefix: str, default: float) -> float:
        if key not in data:
            return default
        try:
            return parse_duration(data[key])
        except ValueError:
            self.problems.append(
                f"{prefix}.{key} = {data[key]!r} is invalid: expected a positive duration such as "
                "\"30s\", \"500ms\", \"2m\" or a number of seconds"
            )
            return default

    def size(self, data: Mapping[str, Any], key: str, prefix: str, default: int) -> int:
        if key not in data:
            return default
        try:
            return parse_size(data[key])
        except ValueError:
            self.problems.append(
                f"{prefix}.{key} = {data[key]!r} is invalid: expected a positive size such as "
                "\"128MB\", \"512KB\" or a number of bytes"
            )
            return default


def _parse_bind(checker: _Checker, value: Any) -> tuple[str, int]:
    text = str(value)
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if host and port.isdigit() and 0 < int(port) < 65536:
        return host, int(port)
    checker.problems.append(
        f"grappler.bind = {value!r} is invalid: expected HOST:PORT such as \"127.0.0.1:8080\" or \"[::1]:8080\""
    )
    return "127.0.0.1", 8080


def _build_grappler(checker: _Checker, data: Mapping[str, Any]) -> GrapplerConfig:
    allowed = {"bind", "workers", "max_body_size", "reply_grace", "graceful_timeout"}
    checker.unknown(data, "grappler", allowed)
    host, port = _parse_bind(checker, data.get("bind", "127.0.0.1:8080"))
    return GrapplerConfig(
        host=host,
        port=port,
        workers=checker.integer(data, "workers", "grappler", 1),
        max_body_size=checker.size(data, "max_body_size", "grappler", 6 * 1024 * 1024),
        reply_grace=checker.duration(data, "reply_grace", "grappler", 0.25),
        graceful_timeout=checker.duration(data, "graceful_timeout", "grappler", 30.0),
    )


def _build_deflector(checker: _Checker, data: Mapping[str, Any], base: Path) -> DeflectorConfig:
    allowed = {"start_timeout", "shutdown_grace", "log_buffer", "work_dir", "worker_id_base", "max_open_files",
               "max_processes"}
    checker.unknown(data, "deflector", allowed)
    work_dir = data.get("work_dir")
    return DeflectorConfig(
        start_timeout=checker.duration(data, "start_timeout", "deflector", 30.0),
        shutdown_grace=checker.duration(data, "shutdown_grace", "deflector", 30.0),
        log_buffer=checker.integer(data, "log_buffer", "deflector", 10000),
        work_dir=(base / str(work_dir)) if work_dir else None,
        worker_id_base=checker.integer(data, "worker_id_base", "deflector", 100000, minimum=1000),
        max_open_files=checker.integer(data, "max_open_files", "deflector", 1024, minimum=16),
        max_processes=checker.integer(data, "max_processes", "deflector", 64, minimum=16),
    )


def _build_function(checker: _Checker, name: str, data: Any, base: Path) -> FunctionConfig | None:
    prefix = f"functions.{name}"
    if not _FUNCTION_NAME.match(name):
        checker.problems.append(
            f"function name {name!r} is invalid: use 1 to 64 letters, digits, '-' or '_', starting with a letter or digit"
        )
        return None
    if not isinstance(data, Mapping):
        checker.problems.append(f"{prefix} must be a table ([{prefix}]), got {data!r}")
        return None

    allowed = {"source", "handler", "runtime", "timeout", "workers", "min_workers", "max_workers", "idle_timeout",
               "max_invocations", "max_age", "concurrency", "memory", "environment", "allow_child_processes",
               "allow_worker_threads"}
    checker.unknown(data, prefix, allowed)
    if "source" not in data:
        checker.problems.append(f"{prefix}.source is missing: set it to a directory, a .tar.gz or a .zip of the code")
    if "handler" not in data:
        checker.problems.append(f"{prefix}.handler is missing: set it to FILE.EXPORT, for example \"index.handler\"")

    source = base / checker.string(data, "source", prefix, ".")
    if "source" in data and not source.exists():
        checker.problems.append(f"{prefix}.source = {data['source']!r} is invalid: {source} does not exist")
    elif "source" in data and source.is_file() and not str(source).endswith((".tar.gz", ".tgz", ".zip")):
        checker.problems.append(
            f"{prefix}.source = {data['source']!r} is invalid: expected a directory, a .tar.gz, a .tgz or a .zip"
        )

    handler = checker.string(data, "handler", prefix, "index.handler")
    module, _, export = handler.rpartition(".")
    if "handler" in data and (not module or not export):
        checker.problems.append(
            f"{prefix}.handler = {handler!r} is invalid: expected FILE.EXPORT, for example \"index.handler\""
        )

    if "workers" in data and ("min_workers" in data or "max_workers" in data):
        checker.problems.append(
            f"{prefix}: set either workers (a fixed pool) or min_workers and max_workers (an elastic pool), not both"
        )
    fixed = checker.integer(data, "workers", prefix, 1)
    min_workers = checker.integer(data, "min_workers", prefix, fixed)
    max_workers = checker.integer(data, "max_workers", prefix, max(fixed, min_workers))
    if max_workers < min_workers:
        checker.problems.append(
            f"{prefix}.max_workers = {max_workers} is invalid: it must be at least min_workers = {min_workers}"
        )
        max_workers = min_workers
    if max_workers > 999:
        checker.problems.append(f"{prefix}.max_workers = {max_workers} is invalid: at most 999 workers per function")
        max_workers = 999

    environment = data.get("environment", {})
    if not isinstance(environment, Mapping) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in environment.items()
    ):
        checker.problems.append(f"{prefix}.environment = {environment!r} is invalid: expected a table of strings")
        environment = {}

    return FunctionConfig(
        name=name,
        source=source,
        handler=handler,
        runtime=checker.string(data, "runtime", prefix, "node"),
        timeout=checker.duration(data, "timeout", prefix, 30.0),
        workers=min_workers,
        max_workers=max_workers,
        idle_timeout=checker.duration(data, "idle_timeout", prefix, 60.0),
        max_invocations=checker.integer(data, "max_invocations", prefix, 0, minimum=0),
        max_age=checker.duration(data, "max_age", prefix, 0.0),
        concurrency=checker.integer(data, "concurrency", prefix, 1),
        memory_mb=checker.size(data, "memory", prefix, 128 * 1024 * 1024) // (1024 * 1024) or 1,
        environment=dict(environment),
        allow_child_processes=checker.boolean(data, "allow_child_processes", prefix, False),
        allow_worker_threads=checker.boolean(data, "allow_worker_threads", prefix, False),
    )


def build_config(data: Mapping[str, Any], path: Path | None = None) -> Config:
    """Validate parsed TOML data and build a ``Config``; raises ``ConfigError`` listing every problem."""
    checker = _Checker()
    base = path.parent if path else Path.cwd()
    checker.unknown(data, "(top level)", {"boothby", "grappler", "deflector", "functions", "transport", "log_sink", "runtime"})

    section = checker.table(data, "boothby")
    checker.unknown(section, "boothby", {"transport", "log_sinks"})
    transport = checker.string(section, "transport", "boothby", "embedded")
    log_sinks = section.get("log_sinks", ["stdout"])
    if not isinstance(log_sinks, list) or not all(isinstance(name, str) and name for name in log_sinks):
        checker.problems.append(
            f"boothby.log_sinks = {log_sinks!r} is invalid: expected a list of log sink names such as [\"stdout\"]"
        )
        log_sinks = ["stdout"]

    functions: dict[str, FunctionConfig] = {}
    for name, function_data in checker.table(data, "functions").items():
        function = _build_function(checker, name, function_data, base)
        if function:
            functions[name] = function

    plugin_tables = {}
    for key in ("transport", "log_sink", "runtime"):
        tables = checker.table(data, key)
        for name, table in tables.items():
            if not isinstance(table, Mapping):
                checker.problems.append(f"{key}.{name} must be a table ([{key}.{name}]), got {table!r}")
        plugin_tables[key] = {name: table for name, table in tables.items() if isinstance(table, Mapping)}

    config = Config(
        transport=transport,
        log_sinks=tuple(dict.fromkeys(log_sinks)),
        grappler=_build_grappler(checker, checker.table(data, "grappler")),
        deflector=_build_deflector(checker, checker.table(data, "deflector"), base),
        functions=functions,
        transport_settings=plugin_tables["transport"],
        log_sink_settings=plugin_tables["log_sink"],
        runtime_settings=plugin_tables["runtime"],
        path=path,
    )
    if checker.problems:
        raise ConfigError(checker.problems, str(path) if path else None)
    return config


def _parse_env_value(text: str) -> Any:
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        pass
    if "," in text:
        return [item.strip() for item in text.split(",") if item.strip()]
    return text


def apply_environment(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Override configuration keys from ``BOOTHBY_*`` environment variables.

    ``BOOTHBY_TRANSPORT=redis`` sets ``[boothby] transport``; nested keys are joined with a double
    underscore, for example ``BOOTHBY_GRAPPLER__BIND`` or ``BOOTHBY_TRANSPORT__REDIS__URL``. Values are
    read as TOML values when they parse as such (numbers, booleans, quoted strings, arrays), as
    comma-separated lists when they contain a comma, and as plain strings otherwise.
    """
    for name, text in environ.items():
        if not name.startswith(ENV_PREFIX) or name == "BOOTHBY_CONFIG":
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX):].split("__")]
        if len(path) == 1:
            path = ["boothby", *path]
        if path[0] == "boothby" and path[-1] not in {"transport", "log_sinks"}:
            continue
        target = data
        for part in path[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                break
        else:
            value = _parse_env_value(text)
            if path == ["boothby", "log_sinks"] and isinstance(value, str):
                value = [value]
            target[path[-1]] = value
    return data


def load_config(path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read the configuration file, apply environment overrides and validate.

    ``path`` defaults to ``$BOOTHBY_CONFIG`` or ``boothby.toml`` in the current directory.
    """
    environ = os.environ if environ is None else environ
    file = Path(path or environ.get("BOOTHBY_CONFIG") or DEFAULT_CONFIG_FILE).absolute()
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            [f"configuration file {file} not found; pass -c FILE or set BOOTHBY_CONFIG"], str(file)
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([f"not valid TOML: {error}"], str(file)) from None
    return build_config(apply_environment(data, environ), file)
