"""Hook specifications that Boothby plugins implement."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import pluggy

if TYPE_CHECKING:
    from .config import Config
    from .logsink import LogSink
    from .runtime import Runtime
    from .transport import Transport

hookspec = pluggy.HookspecMarker("boothby")


# Registry hooks: each plugin registers the backends it provides by name. Boothby calls every
# implementation once when it builds its registry; registering a name twice is an error that
# names both plugins.


@hookspec
def boothby_register_transports(register: Callable[[str, type[Transport]], None]) -> None:
    """Register transport classes.

    Called once per process when the backend registry is built. Call ``register(name, cls)`` for
    each transport; ``name`` is what users write in ``[boothby] transport``, and ``cls`` is a
    subclass of ``boothby.transport.Transport``. Returns nothing.
    """


@hookspec
def boothby_register_runtimes(register: Callable[[str, type[Runtime]], None]) -> None:
    """Register runtime classes.

    Called once per process when the backend registry is built. Call ``register(name, cls)`` for
    each runtime; ``name`` is what users write in ``[functions.NAME] runtime``, and ``cls`` is a
    subclass of ``boothby.runtime.Runtime``. Returns nothing.
    """


@hookspec
def boothby_register_log_sinks(register: Callable[[str, type[LogSink]], None]) -> None:
    """Register log sink classes.

    Called once per process when the backend registry is built. Call ``register(name, cls)`` for
    each log sink; ``name`` is what users list in ``[boothby] log_sinks``, and ``cls`` is a
    subclass of ``boothby.logsink.LogSink``. Returns nothing.
    """


# Lifecycle hooks: notifications, every implementation is called and results are ignored.


@hookspec
def boothby_startup(role: str, config: Config) -> None:
    """Called when a grappler worker process or a deflector has loaded its configuration.

    ``role`` is ``"grappler"`` or ``"deflector"``. Called before the process serves anything,
    on the process's event loop thread. An exception aborts the start.
    """


@hookspec
def boothby_shutdown(role: str, config: Config) -> None:
    """Called when a grappler worker process or a deflector has stopped serving, before it exits.

    ``role`` is ``"grappler"`` or ``"deflector"``. Exceptions are logged and do not stop the
    shutdown of the other plugins.
    """
