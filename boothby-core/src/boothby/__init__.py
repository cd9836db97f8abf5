"""Boothby: functions as a service on warm, reused worker processes."""

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("boothby")
"""Marker for plugin hook implementations: decorate functions with ``@boothby.hookimpl``."""

__all__ = ["__version__", "hookimpl"]
