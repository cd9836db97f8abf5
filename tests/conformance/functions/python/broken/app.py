"""Conformance scenario "broken": loading the module fails, so the worker must report it at readiness."""

raise RuntimeError("boothby conformance: broken on purpose")
