"""``run`` and ``resume`` when the reader of stdout goes away (``python flow.py run | head``).

Their output is a view of the run, not its work: once stdout cannot be written (a closed
pipe), the run goes on and is recorded as usual, the rest of the output is dropped, and the
command exits with the run's own code, without a traceback. Python's recommended handling
of a broken pipe: point the stdout file descriptor at the null device, so that the writes
and the flush at exit that would fail again succeed quietly.
"""

from __future__ import annotations

import contextlib
import os
import sys

__all__ = ["say", "settle_stdout", "stdout_gone"]


def say(text: str) -> None:
    """Print the line ``text`` on stdout and flush; a stdout gone drops it (see above)."""
    try:
        print(text, flush=True)
    except (OSError, ValueError):
        stdout_gone()


def settle_stdout() -> None:
    """Flush stdout before the command exits; a stdout gone drops what is left."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        stdout_gone()


def stdout_gone() -> None:
    real = sys.__stdout__
    with contextlib.suppress(OSError, ValueError, AttributeError):
        fd = real.fileno() if real is not None else 1
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fd)
        finally:
            os.close(devnull)
