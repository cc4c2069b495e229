"""What a step raised: the task's failure, or the run's own stop.

Everything a step raises fails its task, ``sys.exit()`` and ``raise BaseException(...)``
included; only the run's cancellation and a ``KeyboardInterrupt`` on the event loop (Ctrl-C)
stop the run. A plain step runs in a worker thread, which no signal reaches: what it raises
that is no ``Exception`` is carried out of the thread (:func:`call_in_thread`), so that the
loop does not take it for the run stopping (:func:`step_error`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from ._attempt import Attempt, Result

__all__ = ["call_in_thread", "step_error"]


class _Raised(Exception):
    """Carries out of a worker thread what a plain step raised that is no ``Exception``
    (``raise BaseException(...)``, ``GeneratorExit``, a ``KeyboardInterrupt`` of its own: no
    signal reaches a worker thread). Raised as itself on the loop, it would pass for the run
    being cancelled or interrupted (see :func:`step_error`)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(error)
        self.error = error


def call_in_thread(attempt: Attempt) -> Result:
    """:meth:`Attempt.call_sync`, for a worker thread whose result the loop awaits: what the
    step raises that is no ``Exception`` comes out carried (see :func:`step_error`)."""
    try:
        return attempt.call_sync()
    except (Exception, SystemExit):
        raise
    except BaseException as exc:
        raise _Raised(exc) from None


def step_error(raised: BaseException) -> BaseException | None:
    """The error that fails the task, from what awaiting its attempt raised; None when it
    stops the run instead (re-raise it).

    Everything a step raises fails its task (``sys.exit()`` and ``raise BaseException(...)``
    included), except on the loop the run's own cancellation (the ``CancelledError`` of its
    cancel scope) and a ``KeyboardInterrupt`` (Ctrl-C lands in the main thread, where the
    loop runs): those stop the run, which is recorded cancelled.
    """
    if isinstance(raised, _Raised):
        return raised.error
    if isinstance(raised, Exception | SystemExit):
        return raised
    if isinstance(raised, KeyboardInterrupt | anyio.get_cancelled_exc_class()):
        return None
    return raised
