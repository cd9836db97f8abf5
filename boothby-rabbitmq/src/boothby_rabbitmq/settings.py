"""Validate the ``[transport.rabbitmq]`` table and turn it into pika connection parameters."""

from __future__ import annotations

import os
import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit, urlunsplit

import pika

from boothby.config import Config, parse_duration
from boothby.errors import ConfigError

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
DEFAULT_QUEUE_PREFIX = "boothby"
ALLOWED_KEYS = frozenset({
    "url", "ca_file", "cert_file", "key_file", "username_env", "password_env", "queue_prefix", "heartbeat",
})
MAX_HEARTBEAT = 65535
"""AMQP 0-9-1 carries the heartbeat interval as an unsigned 16-bit number of seconds."""

_QUEUE_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECTION = "transport.rabbitmq"


@dataclass(frozen=True)
class RabbitMQSettings:
    """The validated ``[transport.rabbitmq]`` table, with credentials already read from the environment."""

    url: str
    username: str | None
    password: str | None
    ca_file: Path | None
    cert_file: Path | None
    key_file: Path | None
    queue_prefix: str
    heartbeat: int | None

    @property
    def tls(self) -> bool:
        return self.url.lower().startswith("amqps://")

    @property
    def safe_url(self) -> str:
        """The URL with any password replaced by ``***``, for logs and error messages."""
        return redact_url(self.url)

    def connection_parameters(self, connection_name: str) -> pika.URLParameters:
        """Build the pika parameters for one connection, which ``rabbitmqctl list_connections`` shows as ``connection_name``."""
        parameters = pika.URLParameters(self.url)
        if self.username is not None or self.password is not None:
            current = parameters.credentials
            username = self.username if self.username is not None else getattr(current, "username", "guest")
            password = self.password if self.password is not None else getattr(current, "password", "guest")
            parameters.credentials = pika.PlainCredentials(username, password)
        if self.tls:
            parameters.ssl_options = pika.SSLOptions(self.ssl_context(), server_hostname=parameters.host)
        if self.heartbeat is not None:
            parameters.heartbeat = self.heartbeat
        parameters.client_properties = {"connection_name": connection_name}
        return parameters

    def ssl_context(self) -> ssl.SSLContext:
        """Build the TLS context: system CAs or ``ca_file``, and the client certificate when given."""
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if self.cert_file is not None:
            context.load_cert_chain(str(self.cert_file), str(self.key_file) if self.key_file else None)
        return context


def redact_url(url: str) -> str:
    """Return ``url`` with its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))


def parse_settings(table: Mapping[str, Any], config: Config, environ: Mapping[str, str] | None = None) -> RabbitMQSettings:
    """Validate every key of ``[transport.rabbitmq]`` and raise a ``ConfigError`` that lists each invalid one.

    Relative file paths are resolved against the folder of the configuration file.
    """
    environ = os.environ if environ is None else environ
    problems: list[str] = []
    base = config.path.parent if config.path else Path.cwd()

    for key in sorted(set(table) - ALLOWED_KEYS):
        problems.append(f"unknown key {_SECTION}.{key}; allowed keys in [{_SECTION}]: {', '.join(sorted(ALLOWED_KEYS))}")

    url = _parse_url(table, problems)
    tls = url.lower().startswith("amqps://")
    files = {key: _parse_file(table, key, base, tls, problems) for key in ("ca_file", "cert_file", "key_file")}
    if files["key_file"] is not None and files["cert_file"] is None and "cert_file" not in table:
        problems.append(f"{_SECTION}.key_file is set but cert_file is missing: set cert_file to the client certificate")

    username = _read_env(table, "username_env", environ, problems)
    password = _read_env(table, "password_env", environ, problems)

    queue_prefix = table.get("queue_prefix", DEFAULT_QUEUE_PREFIX)
    if not isinstance(queue_prefix, str) or not _QUEUE_PREFIX.match(queue_prefix) or queue_prefix.startswith("amq."):
        problems.append(
            f"{_SECTION}.queue_prefix = {queue_prefix!r} is invalid: expected 1 to 100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit and not with 'amq.' (RabbitMQ reserves that prefix)"
        )
        queue_prefix = DEFAULT_QUEUE_PREFIX

    heartbeat = _parse_heartbeat(table, problems)

    settings = RabbitMQSettings(
        url=url,
        username=username,
        password=password,
        ca_file=files["ca_file"],
        cert_file=files["cert_file"],
        key_file=files["key_file"],
        queue_prefix=queue_prefix,
        heartbeat=heartbeat,
    )
    if tls and not problems:
        try:
            settings.ssl_context()
        except (ssl.SSLError, OSError) as error:
            problems.append(f"the TLS files of [{_SECTION}] (ca_file, cert_file, key_file) cannot be loaded: {error}; "
                            "check that they are PEM files and that the key belongs to the certificate")
    if problems:
        raise ConfigError(problems, str(config.path) if config.path else None)
    return settings


def _parse_url(table: Mapping[str, Any], problems: list[str]) -> str:
    url = table.get("url", DEFAULT_URL)
    if not isinstance(url, str) or not url:
        problems.append(f"{_SECTION}.url = {url!r} is invalid: expected a string such as {DEFAULT_URL!r}")
        return DEFAULT_URL
    display_url = redact_url(url) if "://" in url else url
    scheme = url.partition("://")[0].lower()
    if scheme not in ("amqp", "amqps"):
        problems.append(f"{_SECTION}.url = {display_url!r} is invalid: the scheme must be amqp:// or amqps://")
        return DEFAULT_URL
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        problems.append(f"{_SECTION}.url = {display_url!r} is invalid: {error}")
        return DEFAULT_URL
    if not parts.hostname:
        problems.append(f"{_SECTION}.url = {display_url!r} is invalid: the host is missing, as in amqp://USER:PASSWORD@HOST:PORT/VHOST")
        return DEFAULT_URL
    if port == 0:
        problems.append(f"{_SECTION}.url = {display_url!r} is invalid: the port must be between 1 and 65535")
        return DEFAULT_URL
    try:
        pika.URLParameters(url)
    except (ValueError, TypeError) as error:
        problems.append(f"{_SECTION}.url = {display_url!r} is invalid: {error}")
        return DEFAULT_URL
    return url


def _parse_file(table: Mapping[str, Any], key: str, base: Path, tls: bool, problems: list[str]) -> Path | None:
    if key not in table:
        return None
    value = table[key]
    if not isinstance(value, str) or not value:
        problems.append(f"{_SECTION}.{key} = {value!r} is invalid: expected the path of a PEM file")
        return None
    if not tls:
        problems.append(f"{_SECTION}.{key} is set, but url does not start with amqps://: use an amqps:// URL for TLS, or remove {key}")
        return None
    path = base / value
    if not path.is_file():
        problems.append(f"{_SECTION}.{key} = {value!r} is invalid: {path} is not a readable file")
        return None
    return path


def _read_env(table: Mapping[str, Any], key: str, environ: Mapping[str, str], problems: list[str]) -> str | None:
    if key not in table:
        return None
    name = table[key]
    if not isinstance(name, str) or not _ENV_NAME.match(name):
        problems.append(f"{_SECTION}.{key} = {name!r} is invalid: expected the name of an environment variable, such as \"RABBITMQ_PASSWORD\"")
        return None
    if name not in environ:
        problems.append(f"{_SECTION}.{key} = {name!r} names an environment variable that is not set: set {name} or remove {key}")
        return None
    return environ[name]


def _parse_heartbeat(table: Mapping[str, Any], problems: list[str]) -> int | None:
    if "heartbeat" not in table:
        return None
    value = table["heartbeat"]
    allowed = (f"expected a whole number of seconds from 0 (heartbeats off) to {MAX_HEARTBEAT}, "
               "or a duration such as \"30s\"")
    if isinstance(value, bool):
        problems.append(f"{_SECTION}.heartbeat = {value!r} is invalid: {allowed}")
        return None
    if isinstance(value, int):
        seconds: float = value
    else:
        try:
            seconds = parse_duration(value)
        except ValueError:
            problems.append(f"{_SECTION}.heartbeat = {value!r} is invalid: {allowed}")
            return None
    if seconds != int(seconds) or not 0 <= seconds <= MAX_HEARTBEAT:
        problems.append(f"{_SECTION}.heartbeat = {value!r} is invalid: {allowed}")
        return None
    return int(seconds)
