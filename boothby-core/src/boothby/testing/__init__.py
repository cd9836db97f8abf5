"""Conformance suites that check a transport, runtime or log sink plugin against Boothby's contract.

Importing this package imports pytest, which ``import boothby`` never does. Subclass one of the
base classes in a pytest module, as ``class TestMyTransport(TransportConformance)``, and set the
plugin's name and settings. The section "Running the conformance suite" of docs/writing-plugins.md
has a complete example and explains each rule.
"""

from .contract import contract_members, covers, uncovered_members, unknown_members
from .logsink import LogSinkConformance
from .runtime import (
    BROKEN_MESSAGE,
    SCENARIO_BEHAVIOUR,
    SCENARIOS,
    THROWN_MESSAGE,
    RuntimeConformance,
    Scenario,
    scenarios_in,
)
from .transport import TransportConformance

SUITES = (TransportConformance, RuntimeConformance, LogSinkConformance)
"""Every conformance suite, for the check that each contract member has a test."""

__all__ = [
    "BROKEN_MESSAGE",
    "LogSinkConformance",
    "RuntimeConformance",
    "SCENARIOS",
    "SCENARIO_BEHAVIOUR",
    "SUITES",
    "Scenario",
    "THROWN_MESSAGE",
    "TransportConformance",
    "contract_members",
    "covers",
    "scenarios_in",
    "uncovered_members",
    "unknown_members",
]
