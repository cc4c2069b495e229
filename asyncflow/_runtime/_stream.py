"""``flow.stream()``: run a flow and read its events as they happen (:class:`RunStream`).

The object is both an async context manager and an async iterator:

* ``async with flow.stream(**params) as events: async for ev in events: ...`` runs the flow
  in a task group opened by ``__aenter__``; leaving the block before the run ended cancels
  it and waits until the cancellation is recorded (the run is ``cancelled`` and can be
  resumed). This is the structured form; prefer it.
* ``async for ev in flow.stream(**params)`` alone also works: the run starts at the first
  ``__anext__`` in a task of its own, which :meth:`RunStream.aclose` cancels and waits for
  (so ``async with contextlib.aclosing(flow.stream()) as events:`` is deterministic too).
  A loop left by ``break`` without either drops the object: the run is cancelled at once
  (CPython frees the object as the loop ends), and the cancellation is recorded as soon as
  the event loop next runs, not before the line after the loop.

The stream ends after ``RunFinished`` (whatever the status: a failed run's events say so,
and no StepFailed is raised). An error before the run is recorded (a bad parameter, an
unusable store) is raised by the iteration, as is a store error at its end.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

import anyio
import anyio.abc

from .._errors import StepFailed, UsageError
from .._store._events import Event
from ._events import RunEvents

__all__ = ["RunStream"]


class _Drive:
    """The run of a stream, apart from the stream: its task must not keep the RunStream
    alive (a dropped stream cancels the run from ``__del__``)."""

    __slots__ = ("ended", "error", "hub", "start")

    def __init__(self, start: Callable[[RunEvents], Awaitable[Any]], hub: RunEvents) -> None:
        self.start = start
        self.hub = hub
        self.ended = anyio.Event()
        self.error: BaseException | None = None

    async def __call__(self) -> None:
        try:
            await self.start(self.hub)
        except StepFailed:
            pass  # the events tell the failure (RunFinished: failed)
        except Exception as exc:
            self.error = exc
            if not self.hub.finished and self.hub.error is None:
                self.hub.fail(exc)
        finally:
            self.ended.set()


class RunStream:
    """The events of one run of a flow, from ``RunStarted`` to ``RunFinished`` (see the
    module doc). Made by ``FlowSpec.stream()``; iterate it once."""

    def __init__(self, start: Callable[[RunEvents], Awaitable[Any]]) -> None:
        self._hub = RunEvents()
        self._drive = _Drive(start, self._hub)
        self._ended = self._drive.ended
        self._reader = self._hub.reader()
        self._tg: anyio.abc.TaskGroup | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def run_id(self) -> str | None:
        """The run's id once it is recorded, else None."""
        return str(self._hub.run_id) if self._hub.run_id else None

    # --- the structured form -----------------------------------------------------------------
    async def __aenter__(self) -> RunStream:
        if self._tg is not None or self._task is not None:
            raise UsageError(
                "this flow.stream() has run its flow already (a stream runs one run, entered "
                "or iterated once); call flow.stream(...) again for another run."
            )
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        tg.start_soon(self._drive)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        tg = self._tg
        assert tg is not None
        self._closed = True
        if not self._ended.is_set():
            tg.cancel_scope.cancel()  # the run only: the block's body has ended
        if isinstance(exc, Exception):
            # The body's own error (a ParameterError the iteration raised, say) goes on as
            # it is, not wrapped in an ExceptionGroup: the run never raises into the group.
            await tg.__aexit__(None, None, None)
            return None
        return await tg.__aexit__(exc_type, exc, tb)

    # --- iteration -------------------------------------------------------------------------------
    def __aiter__(self) -> RunStream:
        return self

    async def __anext__(self) -> Event:
        if self._closed:
            raise StopAsyncIteration
        if self._tg is None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drive())
        try:
            return await self._reader.__anext__()
        except StopAsyncIteration:
            await self._ended.wait()
            if self._task is not None:
                await self._task
            self._closed = True
            error = self._drive.error
            if error is not None and error is not self._hub.error:
                raise error from None
            raise

    async def aclose(self) -> None:
        """Stop reading; cancel the run if it is still going, and return once its
        cancellation is recorded."""
        self._closed = True
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with anyio.CancelScope(shield=True), contextlib.suppress(asyncio.CancelledError):
                await task
        elif self._tg is not None and not self._ended.is_set():
            self._tg.cancel_scope.cancel()

    def __del__(self) -> None:
        # Dropped without aclose() (a bare `async for` left by break): cancel the run now.
        task = self._task
        if task is not None and not task.done():
            with contextlib.suppress(RuntimeError):
                task.get_loop().call_soon_threadsafe(task.cancel)
