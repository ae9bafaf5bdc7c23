"""Runs a :class:`~ctxops.serve.app.Server` under uvicorn, with a drain on SIGTERM.

The first SIGTERM (or Ctrl-C) stops admitting requests (503, and ``/health`` turns 503 so load balancers route
away) while in-flight requests finish, for at most ``drain_timeout`` seconds; then uvicorn closes the sockets and
the engine shuts down. A second signal skips the wait. If the backend cannot start, or its engine dies while
serving, the server drains the same way (requests get 503 ``failed``) and the process exits with status 1, so a
supervisor (systemd, Kubernetes) restarts it, as vLLM does when its engine dies.
This module knows processes and signals, not requests.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from types import FrameType

import uvicorn

from ctxops.serve.app import Pages, Server
from ctxops.serve.backends.base import Backend
from ctxops.serve.config import ServerConfig

logger = logging.getLogger("ctxops.serve")
_CANCEL_AFTER_DRAIN_S = 1  # seconds uvicorn waits for stragglers after the drain before cancelling them


class _DrainingUvicorn(uvicorn.Server):
    """uvicorn, except that the first exit signal drains the app before shutting down."""

    def __init__(self, config: uvicorn.Config, app_server: Server, drain_timeout: float) -> None:
        super().__init__(config)
        self.app_server = app_server
        self.drain_timeout = drain_timeout
        self.draining = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        admin = self.app_server.admin
        if admin is not None:  # SIGHUP rereads the routes file
            self._loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(admin.reload_file()))
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.draining or self._loop is None:
            super().handle_exit(sig, frame)  # a second signal: stop now
            return
        logger.info(
            "%s: draining (up to %.0f s); signal again to stop now",
            signal.Signals(sig).name,
            self.drain_timeout,
        )
        self._loop.call_soon_threadsafe(self.start_drain)

    def start_drain(self) -> None:
        """Begin the drain (on the event loop); later calls do nothing."""
        if self.draining:
            return
        self.draining = True
        asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        finished = await self.app_server.drain(self.drain_timeout)
        if not finished:
            left = self.app_server.admission.num_in_flight
            logger.warning("drain timeout: %d request(s) still running will be cancelled", left)
        self.should_exit = True


def run(config: ServerConfig, backend: Backend, pages: Pages | None = None) -> int:
    """Serve until drained and stopped (with ``pages`` beside the API); returns the process exit status."""
    status = 0
    uv: _DrainingUvicorn | None = None

    def fatal(exc: BaseException) -> None:  # called on the event loop
        nonlocal status
        status = 1
        if uv is not None:
            uv.start_drain()

    _configure_logging()
    app_server = Server(config, backend, on_fatal=fatal, pages=pages)
    uv_config = uvicorn.Config(
        app_server.asgi, host=config.host, port=config.port, log_level="info", access_log=False,
        timeout_graceful_shutdown=_CANCEL_AFTER_DRAIN_S, lifespan="on", interface="asgi3",
    )  # fmt: skip
    uv = _DrainingUvicorn(uv_config, app_server, config.drain_timeout)
    uv.run()
    return status


def _configure_logging() -> None:
    """Show ctxops' own messages (ready, draining, failures) next to uvicorn's."""
    ctxops_logger = logging.getLogger("ctxops")
    if not ctxops_logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        ctxops_logger.addHandler(handler)
        ctxops_logger.setLevel(logging.INFO)
