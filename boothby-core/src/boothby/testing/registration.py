"""Fixtures and checks of every conformance suite: the registry, the broker check, registration and lifecycle hooks."""

from __future__ import annotations

import socket
from typing import Any, ClassVar, Sequence

import pytest

from ..config import Config
from ..errors import UnknownBackendError
from ..plugins import Backend, Registry, load_registry


def load_test_registry(extra_plugins: Sequence[object] = ()) -> Registry:
    """Build a fresh registry from the installed entry points plus ``extra_plugins``."""
    return load_registry(extra_plugins=list(extra_plugins))


def get_backend(registry: Registry, kind: str, name: str) -> Backend:
    """Return the backend; for a missing name, fail with the load failures of other plugins, which often explain it."""
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


class SuiteBase:
    """Settings and fixtures common to the transport, runtime and log sink suites."""

    extra_plugins: ClassVar[Sequence[object]] = ()
    """Plugin modules or objects to register besides the installed entry points, for a plugin not packaged yet."""

    broker_address: ClassVar[tuple[str, int] | None] = None
    """(host, port) that must accept a TCP connection before each test; an unreachable broker fails the test."""

    use_uvloop: ClassVar[bool] = True
    """Run each test on uvloop when it is installed, as Boothby's own processes do."""

    @pytest.fixture
    def registry(self) -> Registry:
        return load_test_registry(self.extra_plugins)

    @pytest.fixture(autouse=True)
    def _broker_answers(self) -> None:
        if self.broker_address is None:
            return
        host, port = self.broker_address
        try:
            with socket.create_connection((host, port), timeout=3.0):
                pass
        except OSError as error:
            pytest.fail(f"the broker at {host}:{port} is unreachable ({error}); start it before running the suite")
