"""Plugin discovery and the backend registry."""

from __future__ import annotations

import pytest

import boothby
from boothby.errors import PluginError, UnknownBackendError
from boothby.logsink import LogSink
from boothby.plugins import load_registry
from boothby.transport import Transport


def test_builtins_registered_through_hooks():
    registry = load_registry(load_entry_points=False)
    assert registry.get("transport", "embedded").distribution == "boothby-core"
    assert registry.get("log_sink", "stdout").plugin == "boothby.stdout"


def test_installed_node_runtime_discovered():
    registry = load_registry()
    node = registry.get("runtime", "node")
    assert node.distribution == "boothby-node-runtime"
    assert node.version


def test_extra_plugin_registers_a_sink():
    class MemorySink(LogSink):
        name = "memory"

    class Plugin:
        @boothby.hookimpl
        def boothby_register_log_sinks(self, register):
            register("memory", MemorySink)

    registry = load_registry(load_entry_points=False, extra_plugins=[Plugin()])
    assert registry.get("log_sink", "memory").factory is MemorySink


def test_duplicate_name_names_both_plugins():
    class Shadow:
        @boothby.hookimpl
        def boothby_register_transports(self, register):
            register("embedded", Transport)

    with pytest.raises(PluginError, match=r"transport 'embedded' is registered twice: by plugin .* and by plugin "):
        load_registry(load_entry_points=False, extra_plugins=[Shadow()])


def test_unknown_first_party_backend_names_distribution():
    registry = load_registry(load_entry_points=False)
    with pytest.raises(UnknownBackendError, match=r"pip install boothby-rabbitmq"):
        registry.get("transport", "rabbitmq")


def test_unknown_backend_lists_installed():
    registry = load_registry(load_entry_points=False)
    with pytest.raises(UnknownBackendError, match=r"unknown log sink 'loki'; installed log sinks: stdout"):
        registry.get("log_sink", "loki")


def test_failing_hook_reported_not_fatal():
    class Faulty:
        @boothby.hookimpl
        def boothby_register_runtimes(self, register):
            raise RuntimeError("cannot find my interpreter")

    registry = load_registry(load_entry_points=False, extra_plugins=[Faulty()])
    assert any("cannot find my interpreter" in failure.reason for failure in registry.failures)
    assert registry.get("transport", "embedded")
