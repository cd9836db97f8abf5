"""Serve the grappler with gunicorn and uvicorn worker processes."""

from __future__ import annotations

import logging
from typing import Any

import sys

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from uvicorn import Server
from uvicorn_worker import UvicornWorker

from .config import Config

logger = logging.getLogger(__name__)


class GrapplerWorker(UvicornWorker):
    """A uvicorn worker tuned for the grappler: uvloop, httptools, no access log, no Server header."""

    CONFIG_KWARGS: dict[str, Any] = {
        "loop": "auto",
        "http": "auto",
        "lifespan": "on",
        "access_log": False,
        "server_header": False,
        "date_header": True,
    }

    async def _serve(self) -> None:
        # Same start-up as UvicornWorker, plus one step: when uvicorn begins its graceful
        # shutdown (SIGTERM), the grappler gets the time left, so that its waiting requests get
        # a 503 before gunicorn's graceful_timeout kills the process.
        self.config.app = self.wsgi
        server = Server(config=self.config)
        shutdown = server.shutdown

        async def shutdown_with_drain(sockets: Any = None) -> None:
            grappler = getattr(self.wsgi, "grappler", None)
            if grappler is not None:
                grappler.begin_drain(self.cfg.graceful_timeout)
            await shutdown(sockets)

        server.shutdown = shutdown_with_drain  # type: ignore[method-assign]
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)


class GrapplerApplication(BaseApplication):
    """gunicorn application running ``config.grappler.workers`` asyncio worker processes.

    Each worker process builds its own app after the fork, and with it its own transport
    connection and reply channel.
    """

    def __init__(self, config: Config) -> None:
        self.boothby_config = config
        super().__init__()

    def load_config(self) -> None:
        grappler = self.boothby_config.grappler
        settings = {
            "bind": [grappler.bind],
            "workers": grappler.workers,
            "worker_class": "boothby.server.GrapplerWorker",
            "graceful_timeout": int(grappler.graceful_timeout + 0.999),
            "timeout": max(30, int(self.boothby_config.max_timeout) + 10),
            "keepalive": 75,
            "backlog": 2048,
            "accesslog": None,
            "errorlog": "-",
            "proc_name": "boothby-grappler",
            # gunicorn 24+ opens a control socket at one fixed path per user. Boothby does not use
            # it, and several grapplers on one machine would compete for that path.
            "control_socket_disable": True,
        }
        for key, value in settings.items():
            if key in self.cfg.settings:
                self.cfg.set(key, value)

    def load(self) -> Any:
        from .grappler import create_app

        return create_app(self.boothby_config)


def run(config: Config) -> None:
    """Run the grappler until SIGTERM or SIGINT."""
    GrapplerApplication(config).run()
