"""Find plugins through entry points (stevedore) and collect the backends they register (pluggy)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any, Callable

import pluggy
from stevedore import ExtensionManager

from . import __version__, hookspecs
from .errors import PluginError, UnknownBackendError

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "boothby.plugins"

KINDS = ("transport", "runtime", "log_sink")

FIRST_PARTY = {
    ("transport", "redis"): "boothby-redis",
    ("transport", "rabbitmq"): "boothby-rabbitmq",
    ("transport", "kafka"): "boothby-kafka",
    ("log_sink", "kafka"): "boothby-kafka",
    ("runtime", "node"): "boothby-node-runtime",
}
"""The backends Boothby's own distributions provide, to name the one to install when a name is unknown."""


@dataclass(frozen=True)
class Backend:
    """One transport, runtime or log sink class registered by a plugin."""

    name: str
    kind: str
    factory: Any
    plugin: str
    distribution: str
    version: str


@dataclass(frozen=True)
class LoadFailure:
    """An entry point that could not be imported, with the reason."""

    name: str
    distribution: str
    reason: str


@dataclass
class Registry:
    """Every backend the installed plugins register, by kind and name."""

    plugin_manager: pluggy.PluginManager
    backends: dict[str, dict[str, Backend]] = field(default_factory=lambda: {kind: {} for kind in KINDS})
    failures: list[LoadFailure] = field(default_factory=list)

    def get(self, kind: str, name: str) -> Backend:
        """Return the backend of ``kind`` called ``name``; raise ``UnknownBackendError`` naming the fix."""
        try:
            return self.backends[kind][name]
        except KeyError:
            raise UnknownBackendError(
                kind.replace("_", " "), name, list(self.backends[kind]), FIRST_PARTY.get((kind, name))
            ) from None

    def all(self) -> list[Backend]:
        return [backend for kind in KINDS for backend in self.backends[kind].values()]


def _builtin_plugins() -> list[tuple[str, ModuleType]]:
    from .builtin import embedded, stdout

    return [("embedded", embedded), ("stdout", stdout)]


def _distribution_of(plugin_name: str, dists: dict[str, tuple[str, str]]) -> tuple[str, str]:
    return dists.get(plugin_name, ("boothby-core", __version__))


def _entry_point_distributions() -> dict[tuple[str, str], tuple[str, str]]:
    """Map (entry point name, value) to the (name, version) of the distribution that declares it."""
    found = {}
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = entry_point.dist
        if dist is not None:
            found[(entry_point.name, entry_point.value)] = (dist.metadata["Name"], dist.version)
    return found


def create_plugin_manager(load_entry_points: bool = True) -> tuple[pluggy.PluginManager, list[LoadFailure], dict[str, tuple[str, str]]]:
    """Build a plugin manager with the built-in plugins and, optionally, every installed entry point.

    Returns the manager, the entry points that failed to load, and the distribution name and
    version of each loaded plugin, keyed by plugin name. Nothing is loaded at import time.
    """
    plugin_manager = pluggy.PluginManager("boothby")
    plugin_manager.add_hookspecs(hookspecs)
    for name, module in _builtin_plugins():
        plugin_manager.register(module, name=f"boothby.{name}")

    failures: list[LoadFailure] = []
    distributions: dict[str, tuple[str, str]] = {}
    if not load_entry_points:
        return plugin_manager, failures, distributions

    owners = _entry_point_distributions()

    def owner(entry_point: metadata.EntryPoint) -> tuple[str, str]:
        return owners.get((entry_point.name, entry_point.value), ("unknown distribution", ""))

    def on_load_failure(manager: ExtensionManager, entry_point: metadata.EntryPoint, error: Exception) -> None:
        distribution = owner(entry_point)[0]
        failures.append(LoadFailure(entry_point.name, distribution, f"{type(error).__name__}: {error}"))
        logger.warning("plugin %r from %s failed to load: %s", entry_point.name, distribution, error)
        logger.debug("traceback of plugin %r", entry_point.name, exc_info=error)

    extensions = ExtensionManager(
        namespace=ENTRY_POINT_GROUP,
        invoke_on_load=False,
        on_load_failure_callback=on_load_failure,
    )
    for extension in extensions:
        entry_point = extension.entry_point
        distribution, version = owner(entry_point)
        plugin_name = f"{distribution}:{entry_point.name}"
        if plugin_manager.is_registered(extension.plugin) or plugin_manager.has_plugin(plugin_name):
            continue
        try:
            plugin_manager.register(extension.plugin, name=plugin_name)
        except (ValueError, pluggy.PluginValidationError) as error:
            failures.append(LoadFailure(entry_point.name, distribution, str(error)))
            logger.warning("plugin %r was rejected by the hook validation: %s", plugin_name, error)
            continue
        distributions[plugin_name] = (distribution, version)
    return plugin_manager, failures, distributions


_HOOKS = {
    "transport": "boothby_register_transports",
    "runtime": "boothby_register_runtimes",
    "log_sink": "boothby_register_log_sinks",
}


def load_registry(load_entry_points: bool = True, extra_plugins: list[object] | None = None) -> Registry:
    """Build the plugin manager and collect every backend the plugins register.

    ``extra_plugins`` are registered as well, which is how tests add a plugin without packaging it.
    A name registered twice raises ``PluginError`` naming both plugins.
    """
    plugin_manager, failures, distributions = create_plugin_manager(load_entry_points)
    for plugin in extra_plugins or []:
        plugin_manager.register(plugin)
    registry = Registry(plugin_manager, failures=failures)

    for kind, hook_name in _HOOKS.items():
        hook = getattr(plugin_manager.hook, hook_name)
        for implementation in hook.get_hookimpls():
            plugin_name = implementation.plugin_name
            distribution, version = _distribution_of(plugin_name, distributions)
            register = _make_register(registry, kind, plugin_name, distribution, version)
            try:
                implementation.function(register=register)
            except PluginError:
                raise
            except Exception as error:
                registry.failures.append(LoadFailure(plugin_name, distribution, f"{type(error).__name__}: {error}"))
                logger.warning("plugin %r failed in %s: %s", plugin_name, hook_name, error)
    return registry


def _make_register(registry: Registry, kind: str, plugin_name: str, distribution: str, version: str) -> Callable[[str, Any], None]:
    def register(name: str, factory: Any) -> None:
        existing = registry.backends[kind].get(name)
        if existing is not None:
            raise PluginError(
                f"{kind.replace('_', ' ')} {name!r} is registered twice: by plugin {existing.plugin!r} "
                f"({existing.distribution}) and by plugin {plugin_name!r} ({distribution}); uninstall one of them",
                plugin=plugin_name,
            )
        registry.backends[kind][name] = Backend(name, kind, factory, plugin_name, distribution, version)

    return register
