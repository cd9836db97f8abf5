"""The ``[transport.redis]`` settings: validation, defaults and the connection options they produce."""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import unquote, urlsplit

from boothby.config import parse_duration
from boothby.errors import ConfigError

SECTION = "transport.redis"

DEFAULT_URL = "redis://127.0.0.1:6379/0"

_KEY_PREFIX = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_SCHEMES = ("redis", "rediss", "unix")
_CERT_REQS = ("required", "optional", "none")
_SSL_PATHS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")

ALLOWED_KEYS = frozenset({
    "url", "password_env", "key_prefix",
    "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname", "ssl_cert_reqs",
    "max_queue", "heartbeat_timeout", "socket_timeout", "socket_connect_timeout",
})


@dataclass(frozen=True)
class RedisSettings:
    """The validated ``[transport.redis]`` table."""

    url: str = DEFAULT_URL
    password_env: str | None = None
    key_prefix: str = "boothby"
    ssl_ca_certs: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_check_hostname: bool | None = None
    ssl_cert_reqs: str | None = None
    max_queue: int = 10000
    heartbeat_timeout: float = 5.0
    socket_timeout: float = 5.0
    socket_connect_timeout: float = 2.0

    @functools.cached_property
    def server(self) -> str:
        """The server as ``host:port/db`` (or the socket path), without user name or password, for logs."""
        return describe_url(self.url)

    def connection_options(self) -> dict[str, Any]:
        """Return the keyword arguments for ``ConnectionPool.from_url``, except timeouts and retries.

        Reads the password from ``password_env`` at call time; the value is never stored here.
        """
        options: dict[str, Any] = {}
        if self.password_env:
            options["password"] = os.environ[self.password_env]
        for key in _SSL_PATHS + ("ssl_check_hostname", "ssl_cert_reqs"):
            value = getattr(self, key)
            if value is not None:
                options[key] = value
        return options


def describe_url(url: str) -> str:
    """Return ``host:port/db`` or the unix socket path of a Redis URL, leaving out any credentials."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix:{parts.path}"
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    database = parts.path.lstrip("/") or "0"
    scheme = "rediss://" if parts.scheme == "rediss" else ""
    try:
        port = parts.port or 6379
    except ValueError:
        port = "(invalid port)"
    return f"{scheme}{host}:{port}/{database}"


class _Problems:
    """Collects every invalid key so that the user sees them all in one ConfigError."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        self.messages: list[str] = []

    def add(self, key: str, expected: str) -> None:
        self.messages.append(f"{SECTION}.{key} = {self.data[key]!r} is invalid: expected {expected}")

    def string(self, key: str, default: str | None) -> str | None:
        value = self.data.get(key, default)
        if value is None or (isinstance(value, str) and value):
            return value
        self.add(key, "a non-empty string")
        return default

    def boolean(self, key: str) -> bool | None:
        value = self.data.get(key)
        if value is None or isinstance(value, bool):
            return value
        self.add(key, "true or false")
        return None

    def integer(self, key: str, default: int, minimum: int, maximum: int) -> int:
        value = self.data.get(key, default)
        if isinstance(value, int) and not isinstance(value, bool) and minimum <= value <= maximum:
            return value
        self.add(key, f"a whole number from {minimum} to {maximum}")
        return default

    def duration(self, key: str, default: float, minimum: float, maximum: float) -> float:
        if key not in self.data:
            return default
        try:
            seconds = parse_duration(self.data[key])
        except ValueError:
            seconds = -1.0
        if minimum <= seconds <= maximum:
            return seconds
        self.add(key, f"a duration from {minimum:g}s to {maximum:g}s, such as \"5s\", \"500ms\" or a number of seconds")
        return default


def parse_settings(data: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> RedisSettings:
    """Validate the ``[transport.redis]`` table; raise ``ConfigError`` listing every invalid or unknown key."""
    environ = os.environ if environ is None else environ
    problems = _Problems(data)
    for key in sorted(set(data) - ALLOWED_KEYS):
        problems.messages.append(
            f"unknown key {SECTION}.{key}; allowed keys in [{SECTION}]: {', '.join(sorted(ALLOWED_KEYS))}"
        )

    url = problems.string("url", DEFAULT_URL) or DEFAULT_URL
    _check_url(problems, url)

    password_env = problems.string("password_env", None)
    if password_env is not None and not environ.get(password_env):
        problems.messages.append(
            f"{SECTION}.password_env = {password_env!r} is invalid: the environment variable {password_env} "
            "is not set or empty; export it with the Redis password, or remove password_env"
        )
    if password_env is not None and urlsplit(url).password:
        problems.messages.append(
            f"{SECTION}.password_env = {password_env!r} conflicts with the password inside {SECTION}.url; "
            "keep the password in one place, preferably the environment variable"
        )

    key_prefix = problems.string("key_prefix", "boothby") or "boothby"
    if not _KEY_PREFIX.match(key_prefix):
        problems.add("key_prefix", "1 to 64 letters, digits or the characters _ . : -")

    ssl_paths = {key: problems.string(key, None) for key in _SSL_PATHS}
    for key, path in ssl_paths.items():
        if path is not None and not Path(path).is_file():
            problems.messages.append(f"{SECTION}.{key} = {path!r} is invalid: the file does not exist")
    ssl_check_hostname = problems.boolean("ssl_check_hostname")
    ssl_cert_reqs = problems.string("ssl_cert_reqs", None)
    if ssl_cert_reqs is not None and ssl_cert_reqs not in _CERT_REQS:
        problems.add("ssl_cert_reqs", "one of " + ", ".join(f'"{value}"' for value in _CERT_REQS))
    ssl_keys = [key for key in (*_SSL_PATHS, "ssl_check_hostname", "ssl_cert_reqs") if key in data]
    if ssl_keys and not url.startswith("rediss://"):
        problems.messages.append(
            f"{SECTION}.{ssl_keys[0]} is set but {SECTION}.url does not use TLS; "
            "use a rediss:// URL, or remove the ssl_* keys"
        )

    settings = RedisSettings(
        url=url,
        password_env=password_env,
        key_prefix=key_prefix,
        ssl_ca_certs=ssl_paths["ssl_ca_certs"],
        ssl_certfile=ssl_paths["ssl_certfile"],
        ssl_keyfile=ssl_paths["ssl_keyfile"],
        ssl_check_hostname=ssl_check_hostname,
        ssl_cert_reqs=ssl_cert_reqs,
        max_queue=problems.integer("max_queue", 10000, 1, 10_000_000),
        heartbeat_timeout=problems.duration("heartbeat_timeout", 5.0, 0.5, 3600.0),
        socket_timeout=problems.duration("socket_timeout", 5.0, 0.1, 600.0),
        socket_connect_timeout=problems.duration("socket_connect_timeout", 2.0, 0.1, 600.0),
    )
    if problems.messages:
        raise ConfigError(problems.messages)
    return settings


def _check_url(problems: _Problems, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES:
        problems.messages.append(
            f"{SECTION}.url = {describe_url(url)!r} is invalid: expected a redis://, rediss:// or unix:// URL, "
            f"such as \"{DEFAULT_URL}\""
        )
        return

    if parts.scheme == "unix":
        if not parts.path:
            problems.messages.append(f"{SECTION}.url is invalid: a unix:// URL needs a socket path, such as unix:///run/redis.sock")
        return

    try:
        _ = parts.port  # urlsplit checks the port only when it is read
    except ValueError:
        problems.messages.append(f"{SECTION}.url is invalid: the port of {parts.netloc.rpartition('@')[2]!r} is not a number from 1 to 65535")
    if not parts.hostname:
        problems.messages.append(f"{SECTION}.url is invalid: it has no host; expected a URL such as \"{DEFAULT_URL}\"")
    database = unquote(parts.path.lstrip("/"))
    if database and not database.isdigit():
        problems.messages.append(
            f"{SECTION}.url = {describe_url(url)!r} is invalid: the database {database!r} is not a number"
        )
