"""Commands that a signal stops cleanly: :func:`run_under_signals` runs a job in a new event
loop that SIGINT (Ctrl-C) or SIGTERM cancels, and says which signal did (the exit code is
then 128 + the signal: 130 for SIGINT, 143 for SIGTERM)."""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import anyio.abc

from .._errors import AsyncflowError

__all__ = ["SIGNAL_NAMES", "run_under_signals"]

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
