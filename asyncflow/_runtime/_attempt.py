"""Running a task: one attempt (instance, ``current``, capture), its policies, its commit.

Plain steps without a failure policy take the fast path, :func:`run_plain`, inside a
draining worker thread. Everything else — coroutine steps, and any step with ``@retry``,
``@catch`` or ``@timeout`` — goes through :func:`run_managed` on the event loop, which
owns the attempts: it can wait between retries, and it can stop waiting for a plain step's
thread at its deadline (the late result of such an abandoned attempt is discarded).
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any, overload

import anyio
import anyio.to_thread

from .._codecs import CodecError, Encoded, encode
from .._codecs._text import storable_text
from .._spec._flowbase import FlowBase
from .._spec._flowgraph import NodeKind
from .._store._paths import run_store_var
from .._store._write_ops import AttemptRow, TaskRecord
from ._capture import TaskCapture, capture_var
from ._cards import CardCollector, CardDoc, card_docs, card_records, card_var
from ._context import RunContext, executor_of
from ._current import CurrentInfo, current_var
from ._inputs import Inputs
from ._model import TaskOutcome, TaskSpec, path_text
from ._prefetch import prefetch
from ._step_errors import call_in_thread, step_error
from ._switch import too_many_passes
from ._task import TaskState

__all__ = [
    "Attempt",
    "RunCancelledError",
    "kept_artifacts",
    "run_managed",
    "run_plain",
    "steps_still_running",
    "storable",
    "traceback_text",
]

Result = tuple[TaskOutcome, list[Encoded]]

# The attempts whose step code runs now in this process. Once a run has ended, any left are
# plain steps abandoned in their threads (at a @timeout, or when the run stopped early).
_IN_STEP_CODE: set[Attempt] = set()


def steps_still_running() -> frozenset[Attempt]:
    """The attempts whose step code runs now in this process: those a run started, once it
    has ended, are its abandoned threads."""
    return frozenset(_IN_STEP_CODE)


class RunCancelledError(Exception):
    """A task about to start found its run cancelled: its code is not called."""


class Attempt:
    """One try at a task: a fresh flow instance over the parent's artifacts."""

    __slots__ = (
        "cap",
        "cards",
        "ctx",
        "finished",
        "flow",
        "kept",
        "number",
        "spec",
        "started",
        "state",
    )

    def __init__(self, ctx: RunContext, spec: TaskSpec, number: int = 0) -> None:
        self.ctx = ctx
        self.spec = spec
        self.number = number
        self.state = TaskState(ctx, spec)
        flow = ctx.flow_cls.__new__(ctx.flow_cls)
        object.__setattr__(flow, "_af_task", self.state)
        self.flow: FlowBase = flow
        events = ctx.events
        self.cap = TaskCapture(
            ctx.pathspec(spec),
            ctx.echo,
            None if events is None else events.lines(spec.step, spec.task_id),
        )
        self.started = 0.0
        self.finished = 0.0
        # What a failed attempt in another process kept for @catch (see kept_artifacts).
        self.kept: tuple[dict[str, bytes], list[Encoded]] | None = None
        # The stored form of its cards, made when its code ends (or sent by its worker).
        self.cards: list[CardDoc] | None = None

    def _info(self) -> CurrentInfo:
        ctx = self.ctx
        return CurrentInfo(
            ctx.flow_name,
            str(ctx.run_id),
            self.spec.step,
            str(self.spec.task_id),
            self.number,
            None if ctx.origin_run_id is None else str(ctx.origin_run_id),
            ctx.parameter_names,
            ctx.system_tags,
            self.spec.pass_index,
        )

    def _inputs(self) -> Inputs | None:
        if self.spec.inputs is None:
            return None
        state = self.state
        return Inputs(
            self.ctx, self.spec.step, self.spec.inputs, dict(state.prefetched), state.input_values
        )

    def begin(self) -> None:
        """Note the start; raise :class:`RunCancelledError` once the run is cancelled."""
        self.started = time.time()
        ctx, spec = self.ctx, self.spec
        if not ctx.begin(spec.task_id, self, (spec.step, spec.path, self.number)):
            raise RunCancelledError(f"run {ctx.run_id} was cancelled")
        if spec.pass_index >= ctx.max_passes:
            raise too_many_passes(
                ctx.flow_name, spec.step, ctx.max_passes, spec.pass_index, spec.path
            )

    @contextlib.contextmanager
    def _running(self) -> Iterator[Callable[..., Any]]:
        # Start the task (unless the run is cancelled), make it `current`, the target of
        # print() and its run's store the client's default store in this thread or
        # coroutine; yields the step's function.
        self.begin()
        t1 = current_var.set(self._info())
        t2 = capture_var.set(self.cap)
        t3 = run_store_var.set(self.ctx.store_file)  # the client's default store in the step
        collector = CardCollector(self.spec.step, self.ctx.graph[self.spec.step].info.cards)
        t4 = card_var.set(collector)
        _IN_STEP_CODE.add(self)
        try:
            yield self.ctx.graph[self.spec.step].info.func
        finally:
            _IN_STEP_CODE.discard(self)
            self.finished = time.time()
            self.cards = card_docs(collector)  # succeeded or failed: never raises
            self.cap.end()  # the echo of a partial last line
            current_var.reset(t1)
            capture_var.reset(t2)
            run_store_var.reset(t3)
            card_var.reset(t4)

    def _args(self) -> tuple[Any, ...]:
        inputs = self._inputs()
        return (self.flow,) if inputs is None else (self.flow, inputs)

    def call_sync(self) -> Result:
        """Run a plain step and finish the task (in a worker thread); raises on failure."""
        with self._running() as func:
            func(*self._args())
            return self.state.finish(self.flow)

    async def call_async(self) -> Result:
        """Run a coroutine step on the loop and finish the task; raises on failure."""
        await self._prefetch()
        with self._running() as func:
            await func(*self._args())
            if _cheap_to_encode(self.flow):
                return self.state.finish(self.flow)
            return await anyio.to_thread.run_sync(self.state.finish, self.flow)

    async def _prefetch(self) -> None:
        # A coroutine step reads artifacts synchronously (self.x): read, check and decode
        # the ones its source names in a worker thread first, so the loop never waits.
        await prefetch(self.state)

    def cancelled_record(self, now: float) -> TaskRecord:
        """This task's row when the run is cancelled while it runs: no artifacts."""
        return TaskRecord(
            run_id=self.ctx.run_id,
            task_id=self.spec.task_id,
            step=self.spec.step,
            path=path_text(self.spec.path),
            status="cancelled",
            started_at=self.started or now,
            finished_at=now,
            refs={},
            blobs=[],
            stdout=storable(self.cap.text("stdout")),
            stderr=storable(self.cap.text("stderr")),
            attempt=self.number,
        )

    def row(self, error: BaseException) -> AttemptRow:
        """This attempt as a failed-attempt record."""
        return AttemptRow(
            attempt=self.number,
            status="failed",
            started_at=self.started,
            finished_at=self.finished or time.time(),
            stdout=storable(self.cap.text("stdout")),
            stderr=storable(self.cap.text("stderr")),
            exception=_exc_text(error),
            traceback=traceback_text(error),
        )

    def commit(
        self,
        result: Result | None,
        error: BaseException | None,
        earlier: list[AttemptRow] | None = None,
        status: str | None = None,
    ) -> TaskOutcome:
        """Hand the task's record to the writer (never waits) and return its outcome."""
        ctx, spec = self.ctx, self.spec
        outcome, blobs = result if result is not None else (TaskOutcome(spec, {}), [])
        if error is not None and status is None:
            outcome.error = error
        if ctx.cancelled:
            return outcome
        failed = status is None and error is not None
        # A failed task keeps its cards too (as in Metaflow), in this same commit.
        cards, card_blobs = card_records(self.cards)
        ctx.submit(
            TaskRecord(
                run_id=ctx.run_id,
                task_id=spec.task_id,
                step=spec.step,
                path=path_text(spec.path),
                status=status or ("failed" if failed else "succeeded"),
                started_at=self.started,
                finished_at=self.finished or time.time(),
                refs={} if failed else outcome.refs,
                blobs=card_blobs if failed else [*blobs, *card_blobs],
                stdout=storable(self.cap.text("stdout")),
                stderr=storable(self.cap.text("stderr")),
                exception=None if error is None else _exc_text(error),
                traceback=None if error is None else traceback_text(error),
                attempt=self.number,
                earlier=earlier or [],
                cards=cards,
            ),
            spec.base,
        )
        return outcome


def _exc_text(error: BaseException) -> str:
    return storable(f"{type(error).__name__}: {error}")


@overload
def storable(text: str) -> str: ...
@overload
def storable(text: str | None) -> str | None: ...
def storable(text: str | None) -> str | None:
    """``text`` as it can be stored: lone surrogates (which UTF-8 cannot encode, so SQLite
    cannot hold) written as their escapes, ``\\ud800``; any other text as it is."""
    return None if text is None else storable_text(text)


def run_plain(ctx: RunContext, spec: TaskSpec) -> TaskOutcome:
    """The fast path: a plain step with no failure policy, in the current worker thread."""
    attempt = Attempt(ctx, spec)
    try:
        result = attempt.call_sync()
    except BaseException as exc:  # in a worker thread, whatever the step raised is its own
        return attempt.commit(None, exc)
    return attempt.commit(result, None)


async def _call(attempt: Attempt, limiter: anyio.CapacityLimiter) -> Result:
    where = executor_of(attempt.ctx, attempt.ctx.graph[attempt.spec.step].info)
    if where == "loop":
        return await attempt.call_async()
    if where == "thread":
        # A thread cannot be interrupted: when cancelled (at a deadline, say) we stop
        # waiting, and its late result is dropped with this attempt (never committed).
        return await anyio.to_thread.run_sync(
            call_in_thread, attempt, limiter=limiter, abandon_on_cancel=True
        )
    # In another process: cancelling stops the task (its worker is killed).
    remote = attempt.ctx.call_remote
    assert remote is not None, "a worker runs no tasks of other executors"
    result: Result = await remote(attempt, where)
    return result


async def _try(attempt: Attempt, limiter: anyio.CapacityLimiter, timeout: float | None) -> Result:
    if timeout is None:
        return await _call(attempt, limiter)
    try:
        with anyio.fail_after(timeout):
            return await _call(attempt, limiter)
    except TimeoutError as exc:
        raise TimeoutError(
            f"step {attempt.spec.step!r} ran longer than its @timeout of {timeout:g} s"
        ) from exc


async def run_managed(
    ctx: RunContext, spec: TaskSpec, limiter: anyio.CapacityLimiter
) -> TaskOutcome:
    """Run a task on the loop's side, applying ``@retry``, ``@timeout`` and ``@catch``."""
    info = ctx.graph[spec.step].info
    retries = info.retry.times if info.retry is not None else 0
    pause = info.retry.minutes_between_retries * 60 if info.retry is not None else 0.0
    earlier: list[AttemptRow] = []
    for number in range(retries + 1):
        attempt = Attempt(ctx, spec, number)
        try:
            result = await _try(attempt, limiter, info.timeout)
        except BaseException as raised:
            exc = step_error(raised)
            if exc is None:
                raise
            if ctx.cancelled:
                return attempt.commit(None, exc)  # writes nothing
            if spec.pass_index >= ctx.max_passes:  # refused: no retry or @catch can change it
                return attempt.commit(None, exc, earlier)
            if number < retries:
                earlier.append(attempt.row(exc))
                if ctx.events is not None:
                    ctx.events.retrying(spec.step, spec.task_id, number, _exc_text(exc), pause)
                if pause:
                    await anyio.sleep(pause)
                continue
            if info.catch is not None and ctx.graph[spec.step].kind not in _UNCATCHABLE:
                return await _caught(attempt, exc, earlier)
            return attempt.commit(None, exc, earlier)
        if info.catch is not None and info.catch.var is not None:
            _set_if_unset(result, info.catch.var, None)
        return attempt.commit(result, None, earlier)
    raise AssertionError("unreachable")


# A failed foreach split has no list to fan out over, a failed switch no case to go on to:
# neither is caught, whatever decorates it (check refuses @catch written on them).
_UNCATCHABLE = (NodeKind.FOREACH, NodeKind.SWITCH)


def _set_if_unset(result: Result, name: str, value: Any) -> None:
    outcome, blobs = result
    if name not in outcome.refs or outcome.refs[name] == outcome.spec.base.get(name):
        enc = encode(value)
        outcome.refs[name] = enc.sha
        blobs.append(enc)


async def _caught(attempt: Attempt, error: BaseException, earlier: list[AttemptRow]) -> TaskOutcome:
    """Keep what the failed attempt set, describe the failure, go on to the next steps."""
    policy = attempt.ctx.graph[attempt.spec.step].info.catch
    assert policy is not None
    tb = traceback_text(error)
    if policy.print_exception:
        attempt.cap.stderr.append(tb)
    kept = attempt.kept
    if kept is None:  # encoding what the step set may be big work: not on the loop
        kept = await anyio.to_thread.run_sync(kept_artifacts, attempt.state, attempt.flow)
    refs, blobs = kept
    if policy.var is not None:
        enc = encode({"type": type(error).__name__, "message": str(error), "traceback": tb})
        refs[policy.var] = enc.sha
        blobs.append(enc)
    node = attempt.ctx.graph[attempt.spec.step]
    outcome = TaskOutcome(attempt.spec, refs, node.out)
    return attempt.commit((outcome, blobs), error, earlier, status="caught")


def kept_artifacts(state: TaskState, flow: FlowBase) -> tuple[dict[str, bytes], list[Encoded]]:
    """What a failed attempt set that can be stored (for ``@catch``): its name -> sha
    mapping and the new blobs; values that cannot be encoded are dropped with the attempt."""
    refs = dict(state.base)
    blobs: list[Encoded] = []
    for name, value in list(flow.__dict__.items()):
        if name[0] == "_":
            continue
        try:
            enc = encode(value)
        except CodecError:
            continue
        if refs.get(name) != enc.sha:
            refs[name] = enc.sha
            blobs.append(enc)
    return refs, blobs


def traceback_text(error: BaseException) -> str:
    """The stored traceback of ``error``: the worker's, for an error raised in another
    process (carried as ``__af_traceback__``), else formatted here."""
    remote = getattr(error, "__af_traceback__", None)
    if isinstance(remote, str):
        return storable(remote)
    return storable("".join(traceback.format_exception(error)))


_SCALARS = (int, float, bool, type(None), complex)


def _small(value: Any) -> bool:
    kind = type(value)
    return kind in _SCALARS or (kind in (str, bytes) and len(value) <= 4096)


def _cheap_to_encode(flow: FlowBase) -> bool:
    """True when encoding the task's values on the event loop takes microseconds."""
    for name, value in flow.__dict__.items():
        if name[0] == "_" or _small(value):
            continue
        kind = type(value)
        if kind not in (list, tuple, set, frozenset, dict) or len(value) > 64:
            return False
        items = value.items() if kind is dict else ((v, None) for v in value)
        if not all(_small(k) and _small(v) for k, v in items):
            return False
    return True
