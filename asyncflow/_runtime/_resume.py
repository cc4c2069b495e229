"""Resuming a run: what the origin left, which of its tasks to clone, and the clones.

A resumed run is a new run over the current flow class's graph. The scheduler runs it as
usual, except that before a task runs it asks the :class:`CloneOracle` whether the origin
already did that task: a task is cloned when the origin has a task of the same step and
foreach path that went on (``succeeded``, or ``caught``), its step is not to be re-run, and
its parent tasks in this run are clones too. A clone runs no code: its outcome is the origin
task's complete artifact mapping (by sha: nothing is copied or re-encoded) and its row is a
copy of the origin's, with ``origin_task_id`` pointing back. Everything else runs.

Everything the clones need is read from the store once, in a worker thread, before the run
starts (:func:`load_origin`), so cloning a task costs no I/O and no thread hop.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .._codecs import decode, untrusted_budget
from .._errors import (
    AsyncflowError,
    NotFoundError,
    UntrustedArtifactError,
    shown,
    store_option,
)
from .._spec._flowgraph import FlowGraph, NodeKind
from .._store._blobs import RawBlob
from .._store._lease import run_crash
from .._store._queries import run_ids
from .._store._records import parse_json
from .._store._resume_reads import OriginTaskRow, resume_source
from .._store._rows import RunRow
from .._store._signing import Problem, pickle_macs
from .._store._store import Store
from .._store._write_ops import AttemptRow, CardRow, TaskRecord
from ._context import RunContext
from ._model import TaskOutcome, TaskSpec, path_text
from ._switch import case_key
from ._task import foreach_list

OriginKey = tuple[str, str, int]  # (step, foreach path, loop pass) of an origin task

__all__ = ["CloneOracle", "Origin", "load_origin", "parse_run_id"]

# Statuses of tasks whose work the run went on with, so that a resume keeps it.
WENT_ON = frozenset({"succeeded", "caught"})
_SHOWN = 20


@dataclass(slots=True)
class OriginTask:
    """One task of the origin that may be cloned."""

    row: OriginTaskRow
    refs: dict[str, bytes]
    earlier: list[AttemptRow]  # its failed attempts before the last, copied with it
    items: list[Any] | None = None  # the elements of a foreach split, decoded once
    choice: str | None = None  # the case a switch took (decoded from its condition once)
    cards: list[CardRow] = field(default_factory=list)  # its cards, kept by the clone


@dataclass(slots=True)
class Origin:
    """The run being resumed, as the new run needs it."""

    run: RunRow
    oracle: CloneOracle

    @property
    def params(self) -> dict[str, bytes]:
        """The origin's parameters: name -> sha."""
        return dict(self.run.params)


class CloneOracle:
    """Answers, for a task about to run, whether it is a clone, and records the clone.

    :param origin_run_id: the run resumed.
    :param tasks: (step, foreach path, loop pass) -> the origin's task there, for tasks that
        went on.
    :param rerun: steps that run again whatever the origin did.
    """

    def __init__(
        self,
        origin_run_id: int,
        tasks: dict[OriginKey, OriginTask],
        rerun: frozenset[str],
    ) -> None:
        self.origin_run_id = origin_run_id
        self.tasks = tasks
        self.rerun = rerun
        self.cloned = 0

    def clone(self, ctx: RunContext, spec: TaskSpec) -> TaskOutcome | None:
        """The outcome of ``spec`` taken from the origin, its row submitted; None to run it.

        The caller checks that the task's parents are clones. Cheap: no I/O, never waits.
        """
        if spec.step in self.rerun:
            return None
        origin = self.tasks.get((spec.step, path_text(spec.path), spec.pass_index))
        if origin is None:
            return None
        if origin.choice is None and ctx.graph[spec.step].kind is NodeKind.SWITCH:
            return None  # a switch task that chose no case (caught before this was refused)
        row = origin.row
        outcome = TaskOutcome(
            spec,
            origin.refs,  # shared, never mutated (like every outcome's refs)
            ctx.graph[spec.step].out if origin.choice is None else (origin.choice,),
            origin.items,
            origin_task_id=row.id,
        )
        record = TaskRecord(
            run_id=ctx.run_id,
            task_id=spec.task_id,
            step=spec.step,
            path=row.path,
            status=row.status,
            started_at=row.started_at,
            finished_at=row.finished_at,
            refs=origin.refs,
            blobs=[],
            stdout=row.stdout,
            stderr=row.stderr,
            exception=row.exception,
            traceback=row.traceback,
            attempt=row.attempt,
            earlier=origin.earlier,
            origin_task_id=row.id,
            cards=origin.cards,
        )
        if not ctx.submit(record, spec.base):
            return None
        self.cloned += 1
        return outcome


def parse_run_id(flow: str, run_id: object) -> int:
    """``run_id`` (``12``, ``"12"``) as an int.

    :raises NotFoundError: it is not a run id.
    """
    if isinstance(run_id, int) and not isinstance(run_id, bool):
        return run_id
    if isinstance(run_id, str) and run_id.strip().isdigit():
        return int(run_id.strip())
    raise NotFoundError(
        f"{shown(run_id)} is not a run id of {flow}: run ids are whole numbers, like '12' or "
        "12; pass one of the flow's runs (`asyncflow runs` lists them), or none for its latest."
    )


def _listing(items: list[str], total: int) -> str:
    if total == 0:
        return "(none)"
    shown = ", ".join(items[:_SHOWN])
    rest = total - min(len(items), _SHOWN)
    return f"{shown} and {rest} more" if rest > 0 else shown


def _descendants(graph: FlowGraph, roots: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name not in graph:
            continue
        seen.add(name)
        todo.extend(graph[name].out)
    return seen


def _changed_steps(graph: FlowGraph, stored: str) -> set[str]:
    """Steps whose place in the graph differs from the origin's stored graph."""
    try:
        steps = parse_json(stored).get("steps", [])  # ValueError also when too deep
        before = {s["name"]: s for s in steps if isinstance(s, dict) and "name" in s}
    except (ValueError, AttributeError, TypeError):
        return set(graph.nodes)  # unreadable: trust nothing
    changed: set[str] = set()
    for node in graph:
        old = before.get(node.name)
        if old is None:
            continue  # a new step: it has no origin task, so it runs anyway
        if (
            old.get("kind") != node.kind.value
            or list(old.get("out") or []) != list(node.out)
            or list(old.get("in") or []) != list(node.in_)
            or old.get("foreach_var") != node.foreach_var
            or old.get("condition") != node.condition
            or (old.get("cases") or {}) != dict(node.cases)
        ):
            changed.add(node.name)
    return changed


def load_origin(store: Store, graph: FlowGraph, run_id: int | None, step: str | None) -> Origin:
    """Read the origin run and prepare its clones. Blocking: call from a worker thread.

    :param run_id: the run to resume; None for the flow's latest run.
    :param step: re-run this step and every step after it, whatever the origin did.
    :raises NotFoundError: no such run (the message lists the flow's runs), or no such
        step (the message lists the flow's steps).
    :raises AsyncflowError: the run is still running in a live process (a crashed one, whose
        process is gone, is resumable).
    :raises StoreError: the store cannot be read.
    :raises UntrustedArtifactError: the run would reuse a pickled value not signed by this
        user (or, for a run that is not trusted, whose bytes do not match their hash).
    """
    flow = graph.name
    if step is not None and step not in graph:
        raise NotFoundError(
            f"flow {flow} has no step {shown(step)} to resume from; its steps: "
            f"{', '.join(graph.nodes)}. Pass one of them, or no step to resume from where "
            "the run stopped."
        )
    source = store.read(resume_source(flow, run_id))
    if source is None:
        recent, total = store.read(run_ids(flow, _SHOWN))
        if run_id is None or total == 0:
            raise NotFoundError(
                f"flow {flow} has no run in the store {store.path!r} to resume; run it first "
                "(flow.run() or `python flow.py run`), or pass store= pointing at another file."
            )
        raise NotFoundError(
            f"flow {flow} has no run {run_id} in the store {store.path!r}; its runs, newest "
            f"first: {_listing([str(i) for i in recent], total)}. Pass one of them."
        )
    run = source.run
    if run.status == "running" and run.owner_pid is not None and run_crash(run) is None:
        raise AsyncflowError(
            f"run {flow}/{run.id} is still running (process {run.owner_pid} on "
            f"{run.owner_host}); resuming it now would run its tasks twice. Wait for it to "
            "end, or stop it (it is then recorded as cancelled), and resume it then."
        )
    rerun = _changed_steps(graph, run.graph)
    if step is not None:
        rerun.add(step)
    rerun = _descendants(graph, rerun)
    tasks: dict[OriginKey, OriginTask] = {}
    splits: list[tuple[OriginTask, bytes]] = []
    switches: list[tuple[OriginTask, bytes]] = []
    passes: dict[tuple[str, str], int] = {}  # a loop's tasks: the how-manieth pass each was
    for row in sorted(source.tasks, key=lambda r: r.id):
        passed = passes.get((row.step, row.path), 0)
        passes[(row.step, row.path)] = passed + 1
        if row.status not in WENT_ON or row.step not in graph or row.step in rerun:
            continue  # failed, cancelled, of a step gone or to re-run: runs again
        earlier = [AttemptRow(*a) for a in source.attempts.get(row.id, ())]
        task = OriginTask(
            row, source.refs.get(row.id, {}), earlier, cards=source.cards.get(row.id, [])
        )
        node = graph[row.step]
        if node.kind is NodeKind.FOREACH:
            sha = task.refs.get(node.foreach_var or "")
            if sha is None:
                continue
            splits.append((task, sha))
        if node.kind is NodeKind.SWITCH:
            sha = task.refs.get(node.condition or "")
            if sha is None:
                continue
            switches.append((task, sha))
        tasks[(row.step, row.path, passed)] = task
    _check_reuse(store, run, tasks)
    if splits:
        # The elements each foreach split handed out, decoded once here, in the origin's
        # order (see foreach_list). A split whose elements cannot be had runs again.
        raws = store.read_raw_many(list(dict.fromkeys(sha for _, sha in splits)))
        for task, sha in splits:
            problem = store.check(raws[sha])
            if problem is not None:
                var = graph[task.row.step].foreach_var or ""
                raise _untrusted_origin(run, (task, var), problem, store.path)
            task.items = _decoded_items(raws[sha], budgeted=not run.trusted)
            if task.items is None:
                _drop(tasks, task)
    if switches:
        # The case each switch took, from its condition's value: one that cannot be had
        # (or matches no case now) runs again, and chooses (or fails) then.
        raws = store.read_raw_many(list(dict.fromkeys(sha for _, sha in switches)))
        for task, sha in switches:
            node = graph[task.row.step]
            problem = store.check(raws[sha])
            if problem is not None:
                raise _untrusted_origin(run, (task, node.condition or ""), problem, store.path)
            task.choice = _decoded_choice(raws[sha], node.cases, budgeted=not run.trusted)
            if task.choice is None:
                _drop(tasks, task)
    oracle = CloneOracle(run.id, tasks, frozenset(rerun))
    return Origin(run, oracle)


def _check_reuse(store: Store, run: RunRow, tasks: dict[OriginKey, OriginTask]) -> None:
    """Refuse up front, before anything is written, to reuse pickles nobody vouches for.

    Every pickle blob the resumed run would reuse (the clones' artifacts, the parameters)
    must carry this user's signature. An origin that is not trusted (imported, say) must
    also have intact bytes, checked here; a trusted origin's are checked when a task loads
    them. Blocking.

    :raises UntrustedArtifactError: names the first value refused, and how to trust the run.
    """
    users: dict[bytes, tuple[OriginTask | None, str]] = {}
    for name, sha in run.params:
        users.setdefault(sha, (None, name))
    for task in tasks.values():
        for name, sha in task.refs.items():
            users.setdefault(sha, (task, name))
    macs = store.read(pickle_macs(list(users)))
    if not macs:
        return
    # In a stable order, so that the value named is the same from one attempt to the next.
    order = sorted(macs, key=lambda sha: _described(run, users[sha]))
    for sha in order:
        if not store.signed(sha, macs[sha]):
            raise _untrusted_origin(run, users[sha], Problem.UNSIGNED, store.path)
    if not run.trusted:
        for sha in order:
            problem = store.check(store.read_raw(sha))
            if problem is not None:
                raise _untrusted_origin(run, users[sha], problem, store.path)


def _described(run: RunRow, user: tuple[OriginTask | None, str]) -> str:
    task, name = user
    if task is None:
        return f"parameter {name!r}"
    return f"artifact {name!r} of task {run.flow}/{run.id}/{task.row.step}/{task.row.id}"


def _untrusted_origin(
    run: RunRow, user: tuple[OriginTask | None, str], problem: Problem, store: str
) -> UntrustedArtifactError:
    pathspec = f"{run.flow}/{run.id}"
    if run.trusted:
        state = ""
    elif run.imported:
        state = "it was imported from an archive and is not trusted; "
    else:
        state = "it is not marked trusted; "
    return UntrustedArtifactError(
        f"cannot resume run {pathspec}: {state}it would reuse the pickled "
        f"{_described(run, user)}, and {problem.value}; unpickling runs code, so nothing was "
        f"run. If you trust the run's author, trust it first with `asyncflow trust "
        f"{pathspec}{store_option(store)}` (or run.trust()), then resume it.",
        user[1],
        pathspec,
    )


def _drop(tasks: dict[OriginKey, OriginTask], task: OriginTask) -> None:
    for key in [k for k, t in tasks.items() if t is task]:
        del tasks[key]


def _decoded_choice(
    raw: RawBlob, cases: tuple[tuple[str, str], ...], *, budgeted: bool
) -> str | None:
    budget = untrusted_budget(raw.size) if budgeted and raw.encoding == "msgpack" else None
    try:
        key = case_key(decode(raw.encoding, raw.meta, raw.payload, budget))
    except Exception:  # undecodable now (say, its class is gone)
        return None
    return next((target for case, target in cases if case == key), None)


def _decoded_items(raw: RawBlob, *, budgeted: bool) -> list[Any] | None:
    # An untrusted origin's list decodes under the budget (see _untrusted); past it, the
    # split runs again rather than the list being built.
    budget = untrusted_budget(raw.size) if budgeted and raw.encoding == "msgpack" else None
    try:
        items = foreach_list(decode(raw.encoding, raw.meta, raw.payload, budget))
    except Exception:  # undecodable now (say, its class is gone)
        return None
    return items or None
