"""What the tasks of one run share (:class:`RunContext`): the flow, its graph, the store, the
run's parameters, its cancellation, and where its plain steps run."""

from __future__ import annotations

import ast
import inspect
import textwrap
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .._spec._flowbase import FlowBase
from .._spec._flowgraph import FlowGraph
from .._spec._step import StepInfo
from .._spec._stepsource import attribute_loads
from .._store._reader import BlobReader
from .._store._write_ops import TaskRecord
from .._store._writer import Writer
from ._events import RunEvents
from ._model import TaskOutcome, TaskSpec
from ._switch import DEFAULT_MAX_PASSES

__all__ = [
    "Cloner",
    "RunContext",
    "RunningTask",
    "attribute_reads",
    "executor_of",
    "where_step_runs",
]


class Cloner(Protocol):
    """A resumed run's clone oracle (``_resume.CloneOracle``), as the scheduler uses it."""

    def clone(self, ctx: RunContext, spec: TaskSpec) -> TaskOutcome | None:
        """The outcome of ``spec`` taken from the origin, its row submitted; None to run it."""
        ...


class RunningTask(Protocol):
    """A task between its start and its commit, as the run's cancellation sees it."""

    def cancelled_record(self, now: float) -> TaskRecord:
        """The task's row once the run is cancelled under it: status ``cancelled``."""
        ...


@dataclass(slots=True)
class RunContext:
    """Everything the tasks of one run share."""

    flow_cls: type[FlowBase]
    graph: FlowGraph
    store: BlobReader  # a Store on the coordinator; a worker's own read-only reader elsewhere
    run_id: int
    params: dict[str, bytes]  # attribute name -> sha
    parameter_names: tuple[str, ...]
    origin_run_id: int | None = None
    echo: bool = True
    reads: dict[str, frozenset[str]] = field(default_factory=dict)  # plain steps' (Dask)
    cancelled: bool = False  # set once the run is cancelled: nothing more is committed
    clones: Cloner | None = None  # a resumed run: which tasks are clones of the origin's
    # Resumed from a run that is not trusted: msgpack values decode under a budget (_untrusted).
    budgeted: bool = False
    # Guards ``cancelled`` and ``running``: a task commits, or is recorded as cancelled, once.
    # (The run's event hub's lock when it has one: one lock for a task's start and commit.)
    lock: threading.Lock | threading.RLock = field(default_factory=threading.Lock)
    running: dict[int, RunningTask] = field(default_factory=dict)  # task id -> started task
    writer: Writer | None = None  # the store's writer; None in a worker process (never writes)
    # Where plain steps run: the flow's default ("thread", "process", "dask") and the
    # executors of this run other than threads, by name (made by the coordinator).
    executor: str = "thread"
    executors: dict[str, Any] = field(default_factory=dict)
    executor_options: Any = None  # an _executors.ExecutorOptions on the coordinator
    pack: Any = None  # the run's _jobs.RunPack, made on the first task sent to a worker
    # Runs an attempt on a process or Dask executor (``_remote.call_remote``); set by the
    # coordinator, None in a worker.
    call_remote: Callable[[Any, str], Awaitable[Any]] | None = None
    # The store file's absolute path, taken when the run starts: a client call with no
    # store= inside a task reads it, and worker processes open it.
    store_file: str | None = None
    # The run's system tags (``_spec._tags``): ``current`` reads its user and project there.
    system_tags: tuple[str, ...] = ()
    # The run's events (the coordinator's; None in a worker process).
    events: RunEvents | None = None
    # The most passes a step may run in a loop (see _switch).
    max_passes: int = DEFAULT_MAX_PASSES
    # A spin (``_spin``): a value refused for trust says to spin again with --trust.
    spin: bool = False

    @property
    def flow_name(self) -> str:
        """The flow's name."""
        return self.graph.name

    def pathspec(self, spec: TaskSpec) -> str:
        """``Flow/run/step/task`` of ``spec``."""
        return f"{self.graph.name}/{self.run_id}/{spec.step}/{spec.task_id}"

    def begin(
        self,
        task_id: int,
        task: RunningTask,
        started: tuple[str, tuple[int, ...], int] = ("", (), 0),
    ) -> bool:
        """Note that a task's code starts, publishing its TaskStarted (``started``: step,
        foreach path, attempt); False (do not start it) once the run is cancelled."""
        with self.lock:
            if self.cancelled:
                return False
            self.running[task_id] = task
            if self.events is not None:
                step, path, attempt = started
                self.events.task_started(step, task_id, path, attempt)
            return True

    def submit(self, record: TaskRecord, base: Mapping[str, bytes] | None = None) -> bool:
        """Hand a finished task's record to the writer (never waits), with its TaskFinished.

        Its new blobs are served from ``store.pending`` until they are committed. Returns
        False, writing nothing, once the run is cancelled: the cancellation has recorded the
        task already if it was running. ``base``: the mapping the task started from (which
        artifacts it set is what differs).
        """
        events = self.events
        finished = None if events is None else events.finished_fields(record, base or {})
        with self.lock:
            if self.cancelled:
                return False
            self.running.pop(record.task_id, None)
            pending = self.store.pending
            for enc in record.blobs:
                pending[enc.sha] = enc
            assert self.writer is not None
            if events is not None and finished is not None:
                events.commit(record, finished)
            else:
                self.writer.submit(record)
            return True

    def cancel(self) -> None:
        """Stop the run's commits and record the tasks running now as cancelled.

        Only the first call does anything. Tasks that never started get no row; a task still
        running in a thread finishes in the background, and its result is dropped.
        """
        with self.lock:
            if self.cancelled:
                return
            self.cancelled = True
            running = list(self.running.values())
            self.running.clear()
        now, writer = time.time(), self.writer
        if writer is None:  # a worker's context: the coordinator records its tasks
            return
        for task in running:
            if self.events is not None:
                record = task.cancelled_record(now)
                self.events.commit(record, self.events.finished_fields(record, {}))
            else:
                writer.submit(task.cancelled_record(now))

    def step_reads(self, step: str) -> frozenset[str]:
        """Attribute names the step's source reads (to prefetch for coroutine steps, or to
        ship with a Dask task): a coroutine step's are in its graph node already; a plain
        step's are read from its source here, once per run."""
        names = self.graph[step].reads
        if names is None:
            names = self.reads.get(step)
            if names is None:
                names = attribute_reads(self.graph[step].info.func)
                self.reads[step] = names
        return names


def attribute_reads(func: Callable[..., Any]) -> frozenset[str]:
    """Every ``<expr>.<name>`` read in ``func``'s source (a superset of artifact reads)."""
    try:
        return attribute_loads(ast.parse(textwrap.dedent(inspect.getsource(func))))
    except (OSError, TypeError, SyntaxError):
        return frozenset()


def executor_of(ctx: RunContext, info: StepInfo) -> str:
    """Where a task of the step ``info`` runs: ``"loop"`` (coroutine steps), ``"thread"``,
    ``"process"`` or ``"dask"`` (the step's ``@executor``, else the flow's default). A step
    with ``@environment`` variables never runs on a thread: they would be the whole
    coordinator's, so the flow's default ``"thread"`` means ``"process"`` for it."""
    return where_step_runs(info, ctx.executor)


def where_step_runs(info: StepInfo, default: str) -> str:
    """:func:`executor_of` for a flow whose default executor is ``default``."""
    if info.is_async:
        return "loop"
    where = info.executor or default
    return "process" if where == "thread" and info.environment else where
