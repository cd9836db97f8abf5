"""The members of the plugin contract, and which conformance test exercises each.

Every conformance test is marked with ``@covers(...)``, naming the contract members it calls
or checks: ``Transport.publish``, ``Delivery.release``, ``hookspecs.boothby_startup`` and so on.
``uncovered_members()`` compares those marks with what introspection finds on the base
classes and in ``boothby.hookspecs``, so a member added to the contract without a test is
reported by the suite's own meta-test.
"""

from __future__ import annotations

from typing import Callable, Iterable, TypeVar

from .. import hookspecs
from ..logsink import LogSink
from ..runtime import Runtime
from ..transport import Delivery, Transport

F = TypeVar("F", bound=Callable[..., object])

CONTRACT_CLASSES: tuple[type, ...] = (Transport, Delivery, Runtime, LogSink)
"""The base classes whose public members plugins implement or rely on."""

COVERS_ATTRIBUTE = "__boothby_covers__"


def covers(*members: str) -> Callable[[F], F]:
    """Mark a conformance test as exercising ``members``, for example ``"Transport.publish"``."""

    def mark(test: F) -> F:
        setattr(test, COVERS_ATTRIBUTE, tuple(members))
        return test

    return mark


def contract_members() -> set[str]:
    """Return every public member of the contract classes and every hook specification.

    Class members are named ``Class.member`` and include methods, properties and class
    attributes such as ``Transport.connection_errors``. Hooks are named ``hookspecs.NAME``.
    """
    members = {
        f"{cls.__name__}.{name}"
        for cls in CONTRACT_CLASSES
        for name in vars(cls)
        if not name.startswith("_")
    }
    members |= {
        f"hookspecs.{name}"
        for name, value in vars(hookspecs).items()
        if getattr(value, "boothby_spec", None) is not None
    }
    return members


def conformance_tests(suites: Iterable[type]) -> dict[str, tuple[str, ...]]:
    """Map ``Suite.test_name`` to the members that test declares with ``@covers``."""
    found = {}
    for suite in suites:
        for name in dir(suite):
            test = getattr(suite, name)
            if name.startswith("test_") and callable(test):
                found[f"{suite.__name__}.{name}"] = getattr(test, COVERS_ATTRIBUTE, ())
    return found


def uncovered_members(suites: Iterable[type]) -> set[str]:
    """Return the contract members that no test of ``suites`` declares."""
    covered = {member for members in conformance_tests(suites).values() for member in members}
    return contract_members() - covered


def unknown_members(suites: Iterable[type]) -> set[str]:
    """Return the members that tests declare but the contract no longer has, such as a renamed method."""
    covered = {member for members in conformance_tests(suites).values() for member in members}
    return covered - contract_members()
