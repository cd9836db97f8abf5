"""Checks every kind of plugin shares: registration through the hooks, and the lifecycle hooks."""

from __future__ import annotations

from typing import Any, Sequence

from ..config import Config
from ..errors import UnknownBackendError
from ..plugins import Backend, Registry, load_registry


def load_test_registry(extra_plugins: Sequence[object] = ()) -> Registry:
    """Build a fresh registry from the installed entry points plus ``extra_plugins``."""
    return load_registry(extra_plugins=list(extra_plugins))


def get_backend(registry: Registry, kind: str, name: str) -> Backend:
    """Return the backend; on a missing name fail with the plugins that failed to load, which often say why."""
    try:
        return registry.get(kind, name)
    except UnknownBackendError as error:
        failures = "; ".join(f"{failure.name} ({failure.distribution}): {failure.reason}" for failure in registry.failures)
        hint = f" Plugins that failed to load: {failures}." if failures else ""
        raise AssertionError(
            f"{error}.{hint} Install the plugin's distribution in this environment, or list the plugin "
            "module in the suite's extra_plugins while it is not packaged yet."
        ) from None


def check_registration(registry: Registry, kind: str, name: str, base: type) -> None:
    """Assert that ``name`` is registered for ``kind`` with a subclass of ``base`` whose ``name`` matches."""
    backend = get_backend(registry, kind, name)
    factory: Any = backend.factory
    assert isinstance(factory, type) and issubclass(factory, base), (
        f"{kind} {name!r} is registered with {factory!r}, which is not a subclass of {base.__module__}.{base.__name__}"
    )
    assert factory.name == name, (
        f"{factory.__name__}.name is {factory.name!r} but the class is registered as {name!r}; "
        "Boothby's logs and the log shipper's counters use the class's name"
    )


def run_lifecycle_hooks(registry: Registry, config: Config, roles: Sequence[str]) -> None:
    """Call ``boothby_startup`` and then ``boothby_shutdown`` for each role, as Boothby's processes do.

    Call this from inside a running event loop: Boothby calls both hooks on its event loop
    thread while the loop runs.
    """
    hook = registry.plugin_manager.hook
    for role in roles:
        hook.boothby_startup(role=role, config=config)
        hook.boothby_shutdown(role=role, config=config)
