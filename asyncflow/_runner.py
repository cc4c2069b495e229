"""``Runner`` and ``RunHandle``: start runs in the background of an app and watch or steer
them (``from asyncflow import Runner``).

A :class:`Runner` is an async context manager that owns one anyio task group for the life
of an app (a FastAPI lifespan, say). Each run is a task of that group, inside a cancel scope
of its own (:meth:`RunHandle.cancel`) and, with ``max_runs``, holding one slot of a
semaphore from before its record is made to after its end is recorded. The task never raises
into the group once its run is recorded: a failed run's error waits in its handle for
:meth:`RunHandle.wait`, so one run cannot cancel its siblings or the runner. An error before
the run is recorded (a bad parameter, an invalid flow, an unusable store) is raised by
:meth:`Runner.start` (anyio's ``TaskGroup.start``: the task belongs to the caller until it
reports its start). Events come from the run's hub (``_events.RunEvents``): a handle's
readers are the hub's readers.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any

import anyio
import anyio.abc

from ._client import Run
from ._client._handle import StoreHandle
from ._client._run_events import check_after
from ._errors import NotFoundError, StepFailed, UsageError
from ._flowspec import FlowSpec
from ._runtime._events import RunEvents
from ._runtime._run import ResumeRequest
from ._store import _queries as q
from ._store._events import Event
from ._store._paths import resolve_store_path

__all__ = ["KEEP_ENDED", "RunHandle", "Runner"]

KEEP_ENDED = 1000  # the handles of this many ended runs are kept for Runner.get


class RunHandle:
    """A run started by a :class:`Runner`: watch it, wait for it, cancel it.

    Made by :meth:`Runner.start` (or :meth:`Runner.resume`) once the run is recorded; never
    constructed directly.
    """

    def __init__(self, flow_name: str, store: str) -> None:
        self._flow = flow_name
        self._store = StoreHandle(store)
        self._run_id = ""
        # The live stream; let go when the run ends (readers made before keep it alive
        # while they read; later ones read the store), so an ended handle stays small.
        self._hub: RunEvents | None = RunEvents()
        self._scope = anyio.CancelScope()
        self._done = anyio.Event()
        self._status = "running"
        self._run: Run | None = None
        self._error: Exception | None = None

    @property
    def run_id(self) -> str:
        """The run's id, as a string (``"12"``)."""
        return self._run_id

    @property
    def flow_name(self) -> str:
        """The flow's name (its class name)."""
        return self._flow

    @property
    def pathspec(self) -> str:
        """``Flow/run_id``."""
        return f"{self._flow}/{self._run_id}"

    @property
    def status(self) -> str:
        """``"running"`` until the run's end is recorded, then ``"succeeded"``, ``"failed"``
        or ``"cancelled"``."""
        return self._status

    @property
    def done(self) -> bool:
        """Whether the run has ended (its end is recorded)."""
        return self._done.is_set()

    def events(self, *, after: int = 0) -> AsyncIterator[Event]:
        """The run's events (``asyncflow.events``), from its first (``RunStarted``) to
        ``RunFinished``: the past first, then live. Any number of readers, each at its own
        pace; a reader that is never read costs the run nothing (the events it has not
        read come back from the store when it does). Read on the runner's event loop.

        :param after: start after the event of this ``seq`` (a reader that reconnects, such
            as a browser's ``EventSource`` sending ``Last-Event-ID``, picks up where it was).
        :raises UsageError: ``after`` is not an int ≥ 0.
        :raises StoreError: (while reading) a stored event is damaged.
        """
        first = check_after(after) + 1
        hub = self._hub
        if hub is not None:
            return hub.reader(first)
        return self._stored_events(after)

    async def _stored_events(self, after: int) -> AsyncIterator[Event]:
        run = await self._client_run()
        async for ev in run.aevents(after=after):
            yield ev

    async def _client_run(self) -> Run:
        # The Run of an ended run: the one the run returned, else its record, read now.
        if self._run is None:
            row = await self._store.arun(q.run(self._flow, int(self._run_id)))
            assert row is not None
            self._run = Run._make(self._store, row)
        return self._run

    async def wait(self) -> Run:
        """Wait for the run's end and return its :class:`asyncflow.Run`.

        A cancelled run is returned too (its ``status`` is ``"cancelled"``).

        :raises StepFailed: a step failed, as ``flow.run()`` raises it (``.run`` is the
            failed run).
        :raises StoreError: the store failed during the run.
        """
        await self._done.wait()
        if self._error is not None:
            raise self._error
        return await self._client_run()

    async def cancel(self) -> None:
        """Cancel the run and return once its cancellation is recorded: running coroutine
        steps are cancelled, no new task starts, and the run is recorded ``cancelled`` (it
        can be resumed). Nothing happens to a run that has ended already."""
        if self._done.is_set():
            return
        self._scope.cancel()
        await self._done.wait()

    def __repr__(self) -> str:
        return f"RunHandle({self.pathspec!r}, status={self._status!r})"


class Runner:
    """Runs flows in the background of an app: ``async with Runner(...) as runner:``.

    :param store: the store file of the runs started with a flow class (as ``FlowSpec``'s
        ``store``: default ``$ASYNCFLOW_STORE``, else the nearest ``asyncflow.db``).
    :param max_runs: how many runs may go on at once; a further :meth:`start` waits for one
        to end (first come, first served). None (the default): no bound.
    :raises UsageError: ``max_runs`` is not a positive whole number or None.

    Leaving the block waits for every run started in it. Cancelling the block (or an error
    in its body) cancels them: each is recorded ``cancelled`` and can be resumed.
    """

    def __init__(
        self, store: str | os.PathLike[str] | None = None, *, max_runs: int | None = None
    ) -> None:
        if max_runs is not None and (
            isinstance(max_runs, bool) or not isinstance(max_runs, int) or max_runs < 1
        ):
            raise UsageError(
                f"max_runs must be a positive whole number of runs at once, not {max_runs!r}; "
                "leave it out (None) for no bound.",
                "max_runs",
            )
        self._store = resolve_store_path(store)
        self._max_runs = max_runs
        self._slots = None if max_runs is None else anyio.Semaphore(max_runs)
        self._tg: anyio.abc.TaskGroup | None = None
        self._closed = False
        self._handles: dict[str, RunHandle] = {}  # in the order the runs started
        self._ended: dict[str, None] = {}  # ids of ended runs, oldest first
        self._keep_ended = KEEP_ENDED

    @property
    def store(self) -> str:
        """The path of the store file."""
        return self._store

    @property
    def max_runs(self) -> int | None:
        """The bound of runs at once (None: no bound)."""
        return self._max_runs

    # --- the block ---------------------------------------------------------------------------
    async def __aenter__(self) -> Runner:
        if self._tg is not None or self._closed:
            raise UsageError(
                "this Runner has been entered already; make a new Runner(...) for each "
                "`async with` block.",
                "Runner",
            )
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        tg = self._tg
        assert tg is not None
        if isinstance(exc, Exception):
            # The body failed: its runs are cancelled (recorded so), and its error goes on as
            # it is, not wrapped in an ExceptionGroup (no run ever raises into the group).
            tg.cancel_scope.cancel()
            try:
                await tg.__aexit__(None, None, None)
            finally:
                self._closed = True
            return None
        try:
            return await tg.__aexit__(exc_type, exc, tb)
        finally:
            self._closed = True

    # --- starting ------------------------------------------------------------------------------
    async def start(self, flow: type[FlowSpec] | FlowSpec, /, **params: Any) -> RunHandle:
        """Start a run of ``flow`` and return its handle once the run is recorded (its id
        known). With ``max_runs`` runs going on, wait for one to end first; cancelling the
        wait starts nothing (bound it with ``anyio.fail_after``).

        :param flow: a flow class (run with the runner's store and the class's defaults), or
            a flow object made with the runner's store (for its other options:
            ``TrainFlow(store=runner.store, max_workers=4)``).
        :param params: parameter values by name, as for ``flow.run()``.
        :raises ParameterError: a parameter is unknown, missing or invalid (nothing ran).
        :raises FlowValidationError: the flow definition is wrong (nothing ran).
        :raises UsageError: the runner's block is not open, or ``flow`` is not a flow class
            or object of the runner's store.
        """
        return await self._begin(flow, params, None)

    async def resume(
        self,
        flow: type[FlowSpec] | FlowSpec,
        /,
        run_id: str | int | None = None,
        step: str | None = None,
    ) -> RunHandle:
        """Resume a run (as ``flow.resume(run_id, step)``) in the background; the handle is
        returned once the new run is recorded.

        :raises NotFoundError: no such run or step (nothing ran).
        :raises UsageError: as for :meth:`start`.
        """
        return await self._begin(flow, {}, ResumeRequest(run_id, step))

    def get(self, run_id: str | int) -> RunHandle:
        """The handle of a run this runner started: of every run still going, and of the
        last 1,000 that ended (read older ones with ``asyncflow.Flow``).

        :raises NotFoundError: this runner started no run of that id, or it ended long ago.
        """
        handle = self._handles.get(str(run_id))
        if handle is None:
            ids = list(self._handles)[-10:][::-1]
            started = ", ".join(ids) if ids else "none"
            raise NotFoundError(
                f"this Runner has no run {run_id!r}: it did not start it, or the run ended "
                f"long ago (a Runner keeps the handles of its runs still going and of the last "
                f"{self._keep_ended} that ended; its runs, newest first: {started}); read "
                f"a run with asyncflow.Flow(name, store={self._store!r})[run_id]."
            )
        return handle

    # --- the run's task ------------------------------------------------------------------------
    def _flow_object(self, flow: type[FlowSpec] | FlowSpec) -> FlowSpec:
        if isinstance(flow, type) and issubclass(flow, FlowSpec):
            return flow(store=self._store)
        if isinstance(flow, FlowSpec):
            path = flow._af_options.store_path
            if os.path.realpath(path) != os.path.realpath(self._store):
                raise UsageError(
                    f"the {type(flow).__name__} object given to the Runner stores its runs in "
                    f"{path!r}, not in the runner's store {self._store!r}; make it with "
                    f"store=runner.store, or pass the class {type(flow).__name__}.",
                    "flow",
                )
            return flow
        raise UsageError(
            f"Runner.start and Runner.resume take a flow class (a subclass of FlowSpec) or "
            f"a flow object, not {flow!r}; write e.g. runner.start(TrainFlow, alpha=0.1).",
            "flow",
        )

    async def _begin(
        self,
        flow: type[FlowSpec] | FlowSpec,
        params: Mapping[str, Any],
        resume: ResumeRequest | None,
    ) -> RunHandle:
        tg = self._tg
        if tg is None or self._closed:
            raise UsageError(
                "this Runner's block is not open: start runs inside "
                "`async with Runner(...) as runner:` (e.g. in a web app's lifespan).",
                "Runner",
            )
        obj = self._flow_object(flow)
        handle: RunHandle = await tg.start(self._drive, obj, params, resume)
        return handle

    async def _drive(
        self,
        flow: FlowSpec,
        params: Mapping[str, Any],
        resume: ResumeRequest | None,
        *,
        task_status: anyio.abc.TaskStatus[RunHandle],
    ) -> None:
        handle = RunHandle(type(flow).__name__, flow._af_options.store_path)
        hub = handle._hub
        assert hub is not None
        started = False

        def on_start(run_id: int) -> None:
            nonlocal started
            handle._run_id = str(run_id)
            handle._flow = hub.flow or handle._flow
            self._handles[handle._run_id] = handle
            started = True
            task_status.started(handle)

        slots = self._slots
        try:
            if slots is not None:
                await slots.acquire()
            try:
                with handle._scope:
                    handle._run = await flow._af_execute(
                        params, resume, on_start=on_start, events=hub
                    )
                    handle._status = "succeeded"
            finally:
                if slots is not None:
                    slots.release()
        except StepFailed as exc:
            if not started:
                raise
            handle._error, handle._status = exc, "failed"
            handle._run = exc.run
        except Exception as exc:
            if not started:
                raise
            handle._error, handle._status = exc, "failed"
        finally:
            if started:
                if handle._status == "running":
                    handle._status = "cancelled"
                handle._hub = None
                self._ended_run(handle)
            handle._done.set()

    def _ended_run(self, handle: RunHandle) -> None:
        ended = self._ended
        ended[handle.run_id] = None
        while len(ended) > self._keep_ended:
            old = next(iter(ended))
            del ended[old]
            del self._handles[old]
