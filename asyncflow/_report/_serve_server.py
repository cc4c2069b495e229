"""uvicorn, run the way ``asyncflow serve`` needs (imported only once :mod:`._serve` has
checked that the ``ui`` extra is installed): on a socket already listening, quiet (warnings
only, no access log), stopped by SIGINT or SIGTERM without a traceback.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from types import FrameType

import uvicorn
from starlette.types import ASGIApp

__all__ = ["run_server"]

# Seconds the server waits for requests still running when it is asked to stop.
SHUTDOWN_SECONDS = 3
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Server(uvicorn.Server):
    """uvicorn's server without its own signal handling: :func:`run_server` installs its
    handlers before the URL is printed (uvicorn's would raise the signal again once the
    server stopped, ending the process with a KeyboardInterrupt or the signal itself)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.signals: list[int] = []

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def stop(self, signum: int, frame: FrameType | None) -> None:
        """The signal handler: note the signal and ask the server to stop (a second Ctrl-C
        stops it without waiting for the requests still running)."""
        self.signals.append(signum)
        if self.should_exit and signum == signal.SIGINT:
            self.force_exit = True
        self.should_exit = True


@contextlib.contextmanager
def _handlers(server: _Server) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # no signal handlers outside the main thread
        return
    previous = {signum: signal.signal(signum, server.stop) for signum in _SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_server(app: ASGIApp, sock: socket.socket, ready: Callable[[], None]) -> list[int]:
    """Serve ``app`` on the listening ``sock`` until SIGINT or SIGTERM; call ``ready()``
    once the signal handlers are in place, before serving. Returns the signals received."""
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        server_header=False,
        timeout_graceful_shutdown=SHUTDOWN_SECONDS,
    )
    server = _Server(config)
    with _handlers(server):
        ready()
        server.run(sockets=[sock])
    return server.signals
