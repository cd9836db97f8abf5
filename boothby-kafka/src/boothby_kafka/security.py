"""The cluster address, TLS and SASL settings shared by the transport and the log sink."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from typing import Any

from .validation import SettingsChecker

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

CONNECTION_KEYS = {
    "bootstrap_servers", "security_protocol", "sasl_mechanism", "sasl_plain_username", "sasl_password_env",
    "ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_password_env", "ssl_check_hostname",
}


@dataclass(frozen=True)
class ConnectionSettings:
    """The cluster address and login settings, shared by the transport and the log sink."""

    bootstrap_servers: tuple[str, ...]
    security_protocol: str
    sasl_mechanism: str
    sasl_plain_username: str | None
    sasl_password_env: str | None
    ssl_cafile: str | None
    ssl_certfile: str | None
    ssl_keyfile: str | None
    ssl_password_env: str | None
    ssl_check_hostname: bool

    @property
    def servers_text(self) -> str:
        return ",".join(self.bootstrap_servers)

    def client_options(self) -> dict[str, Any]:
        """Build the keyword arguments every aiokafka client takes: servers, TLS and SASL.

        Passwords are read from their environment variables here, on every call, and are never
        stored in the settings or logged.
        """
        options: dict[str, Any] = {
            "bootstrap_servers": list(self.bootstrap_servers),
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            options["ssl_context"] = self._ssl_context()
        if self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_plain_username
            options["sasl_plain_password"] = os.environ.get(self.sasl_password_env or "", "")
        return options

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ssl_cafile)
        context.check_hostname = self.ssl_check_hostname
        if self.ssl_certfile:
            password = os.environ.get(self.ssl_password_env) if self.ssl_password_env else None
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile, password)
        return context


def connection_settings(checker: SettingsChecker) -> ConnectionSettings:
    """Read the keys of ``CONNECTION_KEYS`` from a settings table."""
    protocol = checker.choice("security_protocol", "PLAINTEXT", SECURITY_PROTOCOLS)
    settings = ConnectionSettings(
        bootstrap_servers=checker.servers("bootstrap_servers", "127.0.0.1:9092"),
        security_protocol=protocol,
        sasl_mechanism=checker.choice("sasl_mechanism", "PLAIN", SASL_MECHANISMS),
        sasl_plain_username=checker.string("sasl_plain_username", None),
        sasl_password_env=checker.env_name("sasl_password_env"),
        ssl_cafile=checker.file("ssl_cafile"),
        ssl_certfile=checker.file("ssl_certfile"),
        ssl_keyfile=checker.file("ssl_keyfile"),
        ssl_password_env=checker.env_name("ssl_password_env"),
        ssl_check_hostname=checker.boolean("ssl_check_hostname", True),
    )

    prefix = checker.prefix
    uses_sasl = protocol in ("SASL_PLAINTEXT", "SASL_SSL")
    uses_tls = protocol in ("SSL", "SASL_SSL")
    if uses_sasl and (settings.sasl_plain_username is None or settings.sasl_password_env is None):
        checker.problems.append(
            f"{prefix}.security_protocol = {protocol!r} needs {prefix}.sasl_plain_username and "
            f"{prefix}.sasl_password_env (the name of the environment variable that contains the password)"
        )

    sasl_keys = [key for key in ("sasl_mechanism", "sasl_plain_username", "sasl_password_env") if key in checker.data]
    if sasl_keys and not uses_sasl:
        checker.problems.append(
            f"{prefix}.{sasl_keys[0]} is set, but {prefix}.security_protocol = {protocol!r} does not use SASL; "
            "set security_protocol to \"SASL_PLAINTEXT\" or \"SASL_SSL\""
        )

    ssl_keys = [key for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_password_env", "ssl_check_hostname")
                if key in checker.data]
    if ssl_keys and not uses_tls:
        checker.problems.append(
            f"{prefix}.{ssl_keys[0]} is set, but {prefix}.security_protocol = {protocol!r} does not use TLS; "
            "set security_protocol to \"SSL\" or \"SASL_SSL\""
        )

    if (settings.ssl_certfile is None) != (settings.ssl_keyfile is None):
        checker.problems.append(f"{prefix}.ssl_certfile and {prefix}.ssl_keyfile must be set together")
    return settings
