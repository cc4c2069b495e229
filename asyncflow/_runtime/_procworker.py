"""The main loop of a worker process of the process pool (``python -m ...``).

The coordinator starts it with one end of a socket pair as file descriptor ``argv[1]``; the
worker answers one job at a time on it until the socket closes or a stop message comes. Its
stdout and stderr are the coordinator's (a step's ``print`` is captured per task, as in a
thread, and sent back with the reply). It ignores SIGINT, which a terminal sends to the
whole process group: the coordinator decides when a task stops (by killing its worker). It
ends by itself when the coordinator's process is gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
from typing import NoReturn

__all__ = ["main"]


def _watch_parent(parent: int) -> None:
    # A worker whose coordinator died (killed, crashed) must not run on alone.
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)


def _keep_private(sock: socket.socket) -> None:
    # The coordinator learns that this worker died when its socket closes, which happens only
    # once no process holds this end: a step's own children must not inherit it. Children
    # started with exec (os.system, a shell's background job) get no inheritable copy, and
    # forked ones (os.fork, multiprocessing) close theirs at once; else a child that outlives
    # the worker would keep the coordinator waiting for a reply that never comes.
    os.set_inheritable(sock.fileno(), False)
    os.register_at_fork(after_in_child=sock.close)


def _end() -> NoReturn:
    # End now: a thread a step started and left running (a library's pool, a timer) must
    # not keep this worker alive after the coordinator let it go, as Python's exit would
    # (it waits for every non-daemon thread). Nothing of the worker's needs cleaning up.
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            stream.flush()  # type: ignore[union-attr]
    os._exit(0)


def main(argv: list[str]) -> None:
    """Serve jobs on the socket whose descriptor is ``argv[1]``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    sock = socket.socket(fileno=int(argv[1]))
    _keep_private(sock)
    from . import _capture
    from ._jobs import RemoteError
    from ._wire import ChannelClosed, receive, send
    from ._worker import WorkerRuns, run_job, setup_failed

    _capture.install()
    runs = WorkerRuns()
    while True:
        try:
            message, _ = receive(sock)
        except ChannelClosed:
            _end()
        if message[0] == "stop":
            _end()
        _, key, pack, job = message
        try:
            ctx = runs.get(key, pack)
        except Exception as exc:  # the flow class cannot be rebuilt here, say
            send(sock, setup_failed(exc), [])
            continue
        reply, buffers = run_job(ctx, job)
        try:
            send(sock, reply, buffers)
        except ChannelClosed:
            _end()
        except Exception as exc:  # the reply would not pickle (a foreach list, say)
            reply.items, reply.refs, reply.heads = None, None, []
            reply.error = RemoteError(
                type(exc).__name__,
                f"the task's results could not be sent back from its worker process: {exc}",
            )
            send(sock, reply, [])


if __name__ == "__main__":
    main(sys.argv)
