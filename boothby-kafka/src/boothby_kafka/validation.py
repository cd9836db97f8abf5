"""Read one plugin settings table, checking each value and collecting every problem."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Mapping

_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
_SERVER = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SettingsChecker:
    """Reads one settings table and collects every problem, so that a user sees them all at once."""

    def __init__(self, data: Mapping[str, Any], prefix: str, allowed: set[str]) -> None:
        self.data = data
        self.prefix = prefix
        self.problems: list[str] = []
        for key in data:
            if key not in allowed:
                self.problems.append(
                    f"unknown key {prefix}.{key}; allowed keys in [{prefix}]: {', '.join(sorted(allowed))}"
                )

    def invalid(self, key: str, expected: str) -> None:
        self.problems.append(f"{self.prefix}.{key} = {self.data[key]!r} is invalid: expected {expected}")

    def string(self, key: str, default: str | None) -> str | None:
        value = self.data.get(key, default)
        if value is None or (isinstance(value, str) and value):
            return value
        self.invalid(key, "a non-empty string")
        return default

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.data.get(key, default)
        if isinstance(value, str) and value.upper() in {choice.upper() for choice in choices}:
            return next(choice for choice in choices if choice.upper() == value.upper())
        self.invalid(key, "one of " + ", ".join(choices))
        return default

    def integer(self, key: str, default: int, minimum: int, maximum: int | None = None) -> int:
        value = self.data.get(key, default)
        if isinstance(value, int) and not isinstance(value, bool) and value >= minimum and (
            maximum is None or value <= maximum
        ):
            return value
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        self.invalid(key, f"a whole number {bound}")
        return default

    def optional_integer(self, key: str, minimum: int) -> int | None:
        if key not in self.data:
            return None
        return self.integer(key, minimum, minimum)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if isinstance(value, bool):
            return value
        self.invalid(key, "true or false")
        return default

    def file(self, key: str) -> str | None:
        value = self.string(key, None)
        if value is not None and not Path(value).is_file():
            self.problems.append(f"{self.prefix}.{key} = {value!r} is invalid: no such file")
        return value

    def env_name(self, key: str) -> str | None:
        value = self.string(key, None)
        if value is None:
            return None
        if not _ENV_NAME.match(value):
            self.invalid(key, "the name of an environment variable, such as \"KAFKA_PASSWORD\"")
            return None
        if value not in os.environ:
            self.problems.append(
                f"{self.prefix}.{key} names the environment variable {value}, which is not set; "
                f"set it before starting Boothby"
            )
        return value

    def acks(self, key: str, default: str | int) -> str | int:
        value = self.data.get(key, default)
        if isinstance(value, bool):
            pass
        elif value == "all" or value == -1:
            return "all"
        elif value == 1 or value == "1":
            return 1
        self.invalid(key, "\"all\" (every in-sync replica) or 1 (the partition leader only)")
        return default

    def servers(self, key: str, default: str) -> tuple[str, ...]:
        value = self.data.get(key, default)
        servers = [value] if isinstance(value, str) else value
        if isinstance(servers, list) and servers and all(isinstance(server, str) for server in servers):
            cleaned = tuple(part.strip() for server in servers for part in server.split(",") if part.strip())
            if cleaned and all(_SERVER.match(server) for server in cleaned):
                return cleaned
        self.invalid(key, "HOST:PORT, a comma-separated list of them, or a list such as "
                          "[\"10.0.0.1:9092\", \"10.0.0.2:9092\"]")
        return (default,)

    def topic_name(self, key: str, default: str, max_length: int) -> str:
        value = self.string(key, default) or default
        if _TOPIC_NAME.match(value) and len(value) <= max_length:
            return value
        self.invalid(key, f"at most {max_length} letters, digits, '.', '_' or '-'")
        return default
