"""Configuration: defaults, environment overrides, and clear errors for invalid values."""

from __future__ import annotations

import subprocess
import sys

import pytest

from boothby.config import build_config, load_config, parse_duration, parse_size
from boothby.errors import ConfigError

from .helpers import FUNCTIONS, dedent


def write(tmp_path, text):
    path = tmp_path / "boothby.toml"
    path.write_text(dedent(text))
    return path


VALID = f"""
[boothby]
transport = "embedded"
log_sinks = ["stdout"]

[grappler]
bind = "127.0.0.1:8080"

[functions.hello]
source = "{FUNCTIONS / 'echo'}"
handler = "index.handler"
runtime = "node"
timeout = "30s"
workers = 4
"""


def test_documented_keys_load(tmp_path):
    config = load_config(write(tmp_path, VALID), environ={})
    function = config.functions["hello"]
    assert config.transport == "embedded"
    assert config.log_sinks == ("stdout",)
    assert config.grappler.bind == "127.0.0.1:8080"
    assert function.timeout == 30.0
    assert function.workers == 4
    assert function.handler == "index.handler"


def test_source_is_relative_to_config_file(tmp_path):
    (tmp_path / "fn").mkdir()
    config = load_config(write(tmp_path, """
        [functions.f]
        source = "fn"
        handler = "index.handler"
    """), environ={})
    assert config.functions["f"].source == tmp_path / "fn"


def test_environment_overrides_file(tmp_path):
    environ = {
        "BOOTHBY_TRANSPORT": "redis",
        "BOOTHBY_LOG_SINKS": "stdout,kafka",
        "BOOTHBY_GRAPPLER__BIND": "127.0.0.1:9999",
        "BOOTHBY_FUNCTIONS__HELLO__WORKERS": "7",
        "BOOTHBY_TRANSPORT__REDIS__URL": "redis://127.0.0.1:6380/1",
    }
    config = load_config(write(tmp_path, VALID), environ=environ)
    assert config.transport == "redis"
    assert config.log_sinks == ("stdout", "kafka")
    assert config.grappler.port == 9999
    assert config.functions["hello"].workers == 7
    assert config.settings_for_transport()["url"] == "redis://127.0.0.1:6380/1"


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("timeout", '"30x"', r"functions\.hello\.timeout = '30x' is invalid: expected a positive duration"),
    ("timeout", "-1", r"functions\.hello\.timeout = -1 is invalid"),
    ("workers", "0", r"functions\.hello\.workers = 0 is invalid: expected a whole number >= 1"),
    ("workers", '"four"', r"functions\.hello\.workers = 'four' is invalid"),
    ("memory", '"lots"', r"functions\.hello\.memory = 'lots' is invalid: expected a positive size"),
    ("timout", '"1s"', r"unknown key functions\.hello\.timout; allowed keys in \[functions\.hello\]"),
    ("handler", '"index"', r"functions\.hello\.handler = 'index' is invalid: expected FILE\.EXPORT"),
    ("source", '"/does/not/exist"', r"functions\.hello\.source = '/does/not/exist' is invalid: /does/not/exist does not exist"),
])
def test_invalid_function_values_rejected(tmp_path, key, value, expected):
    lines = [line for line in dedent(VALID).splitlines() if not line.startswith(f"{key} =")]
    lines.append(f"{key} = {value}")
    with pytest.raises(ConfigError, match=expected):
        load_config(write(tmp_path, "\n".join(lines)), environ={})


def test_invalid_bind_rejected():
    with pytest.raises(ConfigError, match=r"grappler\.bind = 'localhost' is invalid: expected HOST:PORT"):
        build_config({"grappler": {"bind": "localhost"}})


def test_every_problem_reported_at_once():
    with pytest.raises(ConfigError) as raised:
        build_config({"grappler": {"bind": "x", "workers": 0}, "boothby": {"log_sinks": "stdout"}})
    assert len(raised.value.problems) == 3


def test_missing_source_and_handler_named():
    with pytest.raises(ConfigError, match=r"functions\.f\.source is missing") as raised:
        build_config({"functions": {"f": {}}})
    assert any("functions.f.handler is missing" in problem for problem in raised.value.problems)


def test_invalid_toml_names_file(tmp_path):
    path = write(tmp_path, "[boothby\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path, environ={})


def test_missing_file_names_fix(tmp_path):
    with pytest.raises(ConfigError, match="not found; pass -c FILE or set BOOTHBY_CONFIG"):
        load_config(tmp_path / "absent.toml", environ={})


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("500ms", 0.5), ("2m", 120), ("1h", 3600), (5, 5)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("text", "size"), [("128MB", 128 * 2**20), ("512KB", 512 * 1024), (100, 100), ("1GiB", 2**30)])
def test_sizes(text, size):
    assert parse_size(text) == size


def test_cli_rejects_malformed_config(tmp_path):
    lines = dedent(VALID).replace('timeout = "30s"', 'timeout = "soon"')
    completed = subprocess.run([sys.executable, "-m", "boothby", "-c", str(write(tmp_path, lines)), "up"],
                               capture_output=True, text=True, timeout=60)
    assert completed.returncode == 2
    assert "functions.hello.timeout = 'soon' is invalid" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_cli_rejects_unknown_transport(tmp_path):
    text = dedent(VALID).replace('transport = "embedded"', 'transport = "nats"')
    completed = subprocess.run([sys.executable, "-m", "boothby", "-c", str(write(tmp_path, text)), "up"],
                               capture_output=True, text=True, timeout=60)
    assert completed.returncode == 2
    assert "unknown transport 'nats'" in completed.stderr
    assert "installed transports: " in completed.stderr
    assert "embedded" in completed.stderr
