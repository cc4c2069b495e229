"""``spin``: run one task of a stored run again, in this process, with the flow's current code.

The task starts from what it started from in the run: its parent task's complete artifact
mapping (a join: every parent task, in order), its foreach frames (index, count and element,
decoded from the stored foreach lists) and the run's parameters, all read from the store or
run archive. It runs exactly as in a run (the same ``Attempt``: a fresh flow instance,
``current``, captured output, lazy artifact reads with the same pickle checks) but nothing is
written: the context has no writer and no events, the file is opened read-only, and what the
task sets is handed back as a :class:`SpinResult`. ``self.next(...)`` is checked against the
graph and recorded, and leads nowhere. ``@retry``, ``@catch`` and ``@timeout`` do not apply
(a spin is one attempt, to see what happens); ``@environment`` variables are set in this
process while the task runs; every step runs here (a plain step in a worker thread, a
coroutine step on the loop), whatever its ``@executor``.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.to_thread

from .._errors import NotFoundError, StoreError, UsageError, shown
from .._spec._flowbase import FlowBase
from .._spec._flowgraph import FlowGraph, NodeKind
from .._spec._tags import is_system_tag
from .._store._resume_reads import OriginTaskRow, ResumeSource
from . import _capture
from ._attempt import Attempt, storable
from ._context import RunContext
from ._model import TaskOutcome, TaskSpec
from ._placing import task_environment
from ._resume import WENT_ON
from ._spin_read import SpinReader, load_run
from ._step_errors import call_in_thread, step_error
from ._task import foreach_list
from ._untrusted import decode_loadable

__all__ = ["SpinResult", "spin_run_id", "spin_task"]

_SHOWN = 20


@dataclass(frozen=True, slots=True)
class SpinResult:
    """What a task did when spun (``await flow.spin(...)``, ``python flow.py spin``).

    :param pathspec: the stored task that was run again (``Flow/run/step/task``).
    :param artifacts: the artifacts the task set or changed, name to value, by name (those it
        only read or left as its parents had them are not here).
    :param stdout: what the task printed to stdout.
    :param stderr: what it printed to stderr.
    :param next: the steps its ``self.next(...)`` named (recorded; nothing runs after a spin).
    :param error: the exception that failed the task, or None.
    :param traceback: that exception's traceback, as text, or None.
    """

    pathspec: str
    artifacts: dict[str, Any] = field(default_factory=dict)
    stdout: str = ""
    stderr: str = ""
    next: tuple[str, ...] = ()
    error: BaseException | None = None
    traceback: str | None = None

    @property
    def ok(self) -> bool:
        """True when the task finished without an error."""
        return self.error is None


def _listing(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    rest = len(items) - _SHOWN
    return (f"{shown} and {rest} more" if rest > 0 else shown) or "(none)"


@dataclass(slots=True)
class _Found:
    """The stored task to spin and what it started from."""

    source: ResumeSource
    task: OriginTaskRow
    path: tuple[int, ...]
    parents: list[OriginTaskRow]


def _cannot(task: str, why: str) -> NotFoundError:
    """What task ``task`` (a pathspec) started from cannot be rebuilt from the run."""
    return NotFoundError(
        f"cannot spin task {task}: {why}, so what the task started from cannot be rebuilt "
        "(the flow's graph may have changed since the run). Resume the run instead."
    )


def _path(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")) if text else ()


def _find(source: ResumeSource, graph: FlowGraph, step: str, task_id: object, path: str) -> _Found:
    """The task of ``step`` to spin (``task_id``, or the step's only task) and its parents.

    :raises NotFoundError: no such step (in the flow or the run) or task.
    :raises UsageError: the step has several tasks and ``task_id`` is None, or it is not a
        task id at all.
    """
    run = source.run
    where = f"run {run.flow}/{run.id}"
    if step not in graph:
        raise NotFoundError(
            f"flow {run.flow} has no step {shown(step)} to spin; its steps: "
            f"{_listing(list(graph.nodes))}. Pass one of them."
        )
    mine = sorted((t for t in source.tasks if t.step == step), key=lambda t: t.id)
    if not mine:
        ran = list(dict.fromkeys(t.step for t in sorted(source.tasks, key=lambda t: t.id)))
        raise NotFoundError(
            f"step {step!r} has no task to spin in {where} ({path!r}); steps with tasks: "
            f"{_listing(ran)}. Spin one of those, or resume the run to reach {step!r}."
        )
    ids = [str(t.id) for t in mine]
    if task_id is None:
        if len(mine) > 1:
            raise UsageError(
                f"step {step!r} of {where} has {len(mine)} tasks; say which one to spin with "
                f"--task ID (task=ID): {_listing(ids)}.",
                "task",
            )
        chosen = mine[0]
    else:
        text = str(task_id).strip()
        if isinstance(task_id, bool) or not (text.isascii() and text.isdecimal()):
            raise UsageError(
                f"task {shown(task_id)} is not a task id: task ids are whole numbers; step "
                f"{step!r} of {where} has the tasks {_listing(ids)}.",
                "task",
            )
        match = [t for t in mine if t.id == int(text)]
        if not match:
            raise NotFoundError(
                f"step {step!r} of {where} has no task {text}; its tasks: {_listing(ids)}. "
                "Pass one of those."
            )
        chosen = match[0]
    task_path = _path(chosen.path)
    return _Found(source, chosen, task_path, _parents(source, graph, chosen, task_path))


def _parents(
    source: ResumeSource, graph: FlowGraph, task: OriginTaskRow, path: tuple[int, ...]
) -> list[OriginTaskRow]:
    """The parent tasks ``task`` started from, in the order its step sees them.

    :raises NotFoundError: a parent did not finish in the run (or the graph changed since).
    """
    node = graph[task.step]
    done: dict[tuple[str, tuple[int, ...]], OriginTaskRow] = {}
    for row in sorted(source.tasks, key=lambda t: t.id):
        if row.status in WENT_ON and row.id < task.id:
            done[(row.step, _path(row.path))] = row  # the latest pass wins
    wanted: list[list[tuple[str, tuple[int, ...]]]]
    if not node.in_:
        return []
    if node.is_join and node.join_kind == "foreach":
        body = node.in_[0]
        found = sorted(
            (key[1][-1], row)
            for key, row in done.items()
            if key[0] == body and len(key[1]) == len(path) + 1 and key[1][:-1] == path
        )
        if found:
            return [row for _, row in found]
        wanted = [[(body, (*path, 0))]]
    elif node.is_join:
        wanted = [[(parent, path)] for parent in node.in_]
    else:
        opts = [(p, path[:-1] if graph[p].kind is NodeKind.FOREACH else path) for p in node.in_]
        wanted = [opts]
    parents: list[OriginTaskRow] = []
    for options in wanted:
        # The latest that came before it: a loop's pass follows the pass before it.
        found_rows = [done[k] for k in options if k in done]
        parent = max(found_rows, key=lambda r: r.id) if found_rows else None
        if parent is None and task.step == graph.start_step:
            return []  # the first pass of a start step that a loop leads back to: no input
        if parent is None:
            run = source.run
            names = " or ".join(repr(k[0]) for k in options)
            where = f"{run.flow}/{run.id}/{task.step}/{task.id}"
            raise _cannot(where, f"its input from step {names} did not finish in that run")
        parents.append(parent)
    return parents


def _stack(ctx: RunContext, found: _Found, graph: FlowGraph) -> tuple[tuple[int, int, object], ...]:
    """The task's foreach frames: (index, count, element) per enclosing foreach.

    :raises NotFoundError: a foreach split of the task did not finish, or the graph changed.
    """
    node = graph[found.task.step]
    openers = [p for p in node.split_parents if graph[p].kind is NodeKind.FOREACH]
    run, path = found.source.run, found.path
    where = f"{run.flow}/{run.id}/{found.task.step}/{found.task.id}"
    if len(openers) != len(path):
        why = f"it ran inside {len(path)} foreach(es), and its step is now inside {len(openers)}"
        raise _cannot(where, why)
    # Each split's latest pass before the task (as for its parents): a loop around a foreach
    # runs its split again, and a later pass's list is not the one this task got its element
    # from (a split's next pass starts only after its join, so after this task).
    by_key = {
        (t.step, _path(t.path)): t
        for t in sorted(found.source.tasks, key=lambda t: t.id)
        if t.status in WENT_ON and t.id < found.task.id
    }
    frames: list[tuple[int, int, object]] = []
    for level, opener in enumerate(openers):
        split = by_key.get((opener, path[:level]))
        var = graph[opener].foreach_var or ""
        sha = None if split is None else found.source.refs.get(split.id, {}).get(var)
        if split is None or sha is None:
            raise _cannot(where, f"the foreach list {var!r} of step {opener!r} is not stored")
        raw = ctx.store.read_raw(sha)
        what = f"foreach list {var!r}"
        split_spec = f"{run.flow}/{run.id}/{opener}/{split.id}"
        items = foreach_list(decode_loadable(ctx, raw, found.task.step, what, var, split_spec))
        index = path[level]
        if index >= len(items):
            why = f"its foreach index {index} is past the {len(items)} element(s) of {var!r}"
            raise _cannot(where, why)
        frames.append((index, len(items), items[index]))
    return tuple(frames)


def spin_run_id(flow: str, run_id: object) -> int:
    """``run_id`` (``12``, ``"12"``) as an int.

    :raises UsageError: it is not a run id.
    """
    if isinstance(run_id, int) and not isinstance(run_id, bool) and run_id >= 0:
        return run_id
    if isinstance(run_id, str) and run_id.strip().isascii() and run_id.strip().isdecimal():
        return int(run_id.strip())
    raise UsageError(
        f"{shown(run_id)} is not a run id of {flow}: run ids are whole numbers, like '12' or 12; "
        f"pass the run whose task to spin (`asyncflow runs {flow}` lists them).",
        "run_id",
    )


async def spin_task(
    flow_cls: type[FlowBase],
    graph: FlowGraph,
    path: str,
    run_id: int,
    step: str,
    task_id: object = None,
    *,
    echo: bool = True,
    trust: bool = False,
    archive: bool = False,
) -> SpinResult:
    """Run the stored task ``step``/``task_id`` of run ``run_id`` again with ``flow_cls``'s
    current code (see the module doc); write nothing.

    :param path: the store or run archive holding the run (read-only).
    :param echo: print the task's output as it runs, prefixed with its pathspec.
    :param trust: load pickled values whoever signed them, if their bytes are intact (and
        msgpack values without the budget for runs not trusted).
    :param archive: ``path`` was given as a run archive (a missing file is said so).
    :raises NotFoundError: no such run, step or task, or what the task started from is not
        stored.
    :raises UsageError: a step of several tasks and no ``task_id``.
    :raises StoreError: the file cannot be read, or an archive was edited.
    :raises UntrustedArtifactError: a pickled input nobody vouches for.
    """
    flow = graph.name
    if archive and not await anyio.Path(path).exists():
        raise StoreError(
            f"there is no run archive at {path!r}; pass the path of an archive written by "
            "`asyncflow export` (or run.export()).",
            path,
        )
    reader, source = await anyio.to_thread.run_sync(load_run, path, flow, run_id, trust)
    try:
        return await _spin(flow_cls, graph, reader, source, step, task_id, echo)
    finally:
        # Closing the last connection may checkpoint and remove an empty -wal file: not on
        # the loop, and done even when the spin is cancelled.
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(reader.close_reader)


async def _spin(
    flow_cls: type[FlowBase],
    graph: FlowGraph,
    reader: SpinReader,
    source: ResumeSource,
    step: str,
    task_id: object,
    echo: bool,
) -> SpinResult:
    found = _find(source, graph, step, task_id, reader.path)
    run = source.run
    ctx = RunContext(
        flow_cls=flow_cls,
        graph=graph,
        store=reader,
        run_id=run.id,
        params=dict(run.params),
        parameter_names=tuple(name for name, _ in run.params),
        echo=echo,
        budgeted=not (run.trusted or reader.trust),
        store_file=reader.path,
        system_tags=tuple(t for t in run.tags if is_system_tag(t)),
        spin=True,
    )
    stack = await anyio.to_thread.run_sync(_stack, ctx, found, graph)
    node = graph[step]
    if node.is_join:
        base = ctx.params
        inputs: list[TaskOutcome] | None = [
            TaskOutcome(TaskSpec(p.id, p.step, _path(p.path), (), {}), source.refs.get(p.id, {}))
            for p in found.parents
        ]
    else:
        inputs = None
        base = source.refs.get(found.parents[0].id, {}) if found.parents else ctx.params
    task = found.task  # its loop pass: how many tasks of its step and path came before it
    passes = sum(t.step == step and t.path == task.path and t.id < task.id for t in source.tasks)
    spec = TaskSpec(task.id, step, found.path, stack, dict(base), inputs, passes)
    attempt = Attempt(ctx, spec)
    _capture.install()
    try:
        if node.info.is_async:
            result = await attempt.call_async()
        else:
            # A thread cannot be interrupted: on Ctrl-C the spin stops waiting for it.
            result = await anyio.to_thread.run_sync(_call_plain, attempt, abandon_on_cancel=True)
        outcome, _ = result
        values = await anyio.to_thread.run_sync(_set_values, attempt, outcome)
    except BaseException as raised:
        exc = step_error(raised)
        if exc is None:  # the spin was cancelled, or Ctrl-C
            raise
        return SpinResult(
            ctx.pathspec(spec),
            {},
            attempt.cap.text("stdout") or "",
            attempt.cap.text("stderr") or "",
            error=exc,
            traceback=_step_traceback(exc),
        )
    finally:
        _capture.uninstall()
    return SpinResult(
        ctx.pathspec(spec),
        values,
        attempt.cap.text("stdout") or "",
        attempt.cap.text("stderr") or "",
        outcome.targets,
    )


def _call_plain(attempt: Attempt) -> tuple[TaskOutcome, Any]:
    with task_environment(attempt.ctx.graph[attempt.spec.step].info.environment):
        return call_in_thread(attempt)


def _set_values(attempt: Attempt, outcome: TaskOutcome) -> dict[str, Any]:
    """The values of what the task set or changed (by sha), by name."""
    base, own = attempt.spec.base, attempt.flow.__dict__
    params = attempt.ctx.params
    values: dict[str, Any] = {}
    for name in sorted(outcome.refs):
        if name in params or outcome.refs[name] == base.get(name):
            continue
        values[name] = own[name] if name in own else attempt.state.load(name)
    return values


_MACHINERY = (
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),  # asyncflow
    os.path.dirname(os.path.abspath(anyio.__file__)),
)


def _step_traceback(error: BaseException) -> str:
    """``error``'s traceback from the step's own frames on (asyncflow's and anyio's frames
    that led to the step are left out)."""
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_MACHINERY):
        tb = tb.tb_next
    return storable("".join(traceback.format_exception(type(error), error, tb)))
