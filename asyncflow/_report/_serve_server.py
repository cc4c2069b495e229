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


@contextlib.contextmanager
def _noted(server: uvicorn.Server, signals: list[int]) -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM are noted in ``signals`` and stop ``server``
    instead of raising. uvicorn puts its own handlers in place while it serves, puts these
    back when it stops, then raises the signal it got again: it lands here, noted."""

    def stop(signum: int, frame: FrameType | None) -> None:
        signals.append(signum)
        server.should_exit = True

    if threading.current_thread() is not threading.main_thread():
        yield  # no signal handlers outside the main thread
        return
    previous = {signum: signal.signal(signum, stop) for signum in _SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_server(app: ASGIApp, sock: socket.socket, ready: Callable[[], None]) -> list[int]:
    """Serve ``app`` on the listening ``sock`` until SIGINT or SIGTERM; call ``ready()``
    once a signal can no longer raise, before serving. Returns the signals received."""
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        server_header=False,
        timeout_graceful_shutdown=SHUTDOWN_SECONDS,
    )
    server = uvicorn.Server(config)
    signals: list[int] = []
    with _noted(server, signals):
        ready()
        server.run(sockets=[sock])
    return signals
