"""Commands that a signal stops cleanly (the exit code is then 128 + the signal: 130 for
SIGINT, Ctrl-C; 143 for SIGTERM).

:func:`run_under_signals` runs a job in a new event loop that SIGINT or SIGTERM cancels (a
run, an export). :func:`signals_noted` is for a command that only reads (``events`` and
``logs --follow``): while it runs, a signal raises nothing where it lands (a
KeyboardInterrupt in the middle of an import or of the event loop's setup leaves debris that
prints tracebacks); it is noted, and cancels the job :func:`run_noted` runs, if any.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import anyio
import anyio.abc

from .._errors import AsyncflowError

__all__ = ["SIGNAL_NAMES", "Noted", "run_noted", "run_under_signals", "signals_noted"]

T = TypeVar("T")

SIGNAL_NAMES: dict[int, str] = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


async def _watch_signals(
    scope: anyio.CancelScope,
    received: list[int],
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """On SIGINT or SIGTERM, note the signal and cancel ``scope`` (the run)."""
    try:
        receiver = anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM)
        signals = receiver.__enter__()
    except (NotImplementedError, ValueError, RuntimeError):
        # No signal handlers here (Windows, or not the main thread): Ctrl-C still arrives
        # as a KeyboardInterrupt that cancels the run.
        task_status.started()
        return
    try:
        task_status.started()
        async for signum in signals:
            received.append(int(signum))
            scope.cancel()
            return
    finally:
        receiver.__exit__(None, None, None)


def run_under_signals(
    job: Callable[[], Awaitable[T]], received: list[int]
) -> T | AsyncflowError | None:
    """Run ``job()`` in a new event loop that SIGINT or SIGTERM cancels (the signal is
    appended to ``received``): its result, the AsyncflowError it raised, or None when a
    signal cancelled it."""

    async def main() -> T | AsyncflowError | None:
        async with anyio.create_task_group() as tg:
            await tg.start(_watch_signals, tg.cancel_scope, received)
            try:
                return await job()
            except AsyncflowError as exc:
                return exc
            finally:
                tg.cancel_scope.cancel()  # stop watching
        return None  # a signal cancelled the job

    try:
        return anyio.run(main)
    except KeyboardInterrupt:
        received.append(signal.SIGINT)
        return None
    except BaseExceptionGroup as group:  # the job's task group let it through
        _, rest = group.split(KeyboardInterrupt)
        if rest is not None:
            raise
        received.append(signal.SIGINT)
        return None


class Noted:
    """The signals noted while :func:`signals_noted` holds (first one first), and what to
    call when one comes."""

    def __init__(self) -> None:
        self.signals: list[int] = []
        self.on_signal: Callable[[], None] | None = None

    def _note(self, signum: int, frame: object) -> None:
        self.signals.append(signum)
        if self.on_signal is not None:
            self.on_signal()

    @property
    def code(self) -> int:
        """0 if no signal came, else 128 + the first one."""
        return 128 + self.signals[0] if self.signals else 0


@contextlib.contextmanager
def signals_noted() -> Iterator[Noted]:
    """While the block runs, SIGINT and SIGTERM are noted rather than raised (see the module
    doc); the handlers before are restored after. Outside the main thread, nothing changes."""
    noted = Noted()
    if threading.current_thread() is not threading.main_thread():
        yield noted
        return
    wanted = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, noted._note) for signum in wanted}
    try:
        yield noted
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_noted(job: Callable[[], Awaitable[None]], noted: Noted) -> int:
    """Run ``job()`` in a new event loop, cancelled by a signal ``noted`` notes (one noted
    before it starts too): 0 if it ended by itself, else 128 + the signal."""

    async def main() -> None:
        if noted.signals:
            return
        with anyio.CancelScope() as scope:
            loop = asyncio.get_running_loop()

            def cancel() -> None:
                with contextlib.suppress(RuntimeError):  # the loop has closed since
                    loop.call_soon_threadsafe(scope.cancel)

            noted.on_signal = cancel
            try:
                await job()
            finally:
                noted.on_signal = None

    anyio.run(main)
    return noted.code
