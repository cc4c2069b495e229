"""Opening a run, step, task or artifact by its pathspec: ``Run("Flow/12")``, ``Step(...)``,
``Task(...)``, ``DataArtifact(...)`` (Metaflow's constructors).

The pathspec is checked here (its shape, its ids), then looked up in one read plan that
goes down the same path ``Flow(name)[run][step][task][name]`` takes, so a missing part gets
the same :class:`~asyncflow.NotFoundError`, listing what exists there. The object found
owns the store handle made for it: its connection closes with ``obj.close()``, at the end
of ``with obj:``, or when the object is collected.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from .._errors import UsageError, shown
from .._store import _queries as q
from .._store._paths import resolve_store_path
from .._store._plans import Plan
from ._flow import _run_id, check_plan
from ._handle import StoreHandle
from ._messages import missing_run_plan
from ._namespace import check_in_namespace, get_namespace
from ._run import Run, StorePath

if TYPE_CHECKING:
    from ._data import DataArtifact
    from ._step import Step
    from ._task import Task

__all__ = ["Kind", "aopen_path", "open_path", "parse_pathspec"]

Kind = Literal["Run", "Step", "Task", "DataArtifact"]

_SHAPES: dict[str, tuple[str, str]] = {
    "Run": ("Flow/run_id", "TrainFlow/12"),
    "Step": ("Flow/run_id/step", "TrainFlow/12/train"),
    "Task": ("Flow/run_id/step/task_id", "TrainFlow/12/train/3"),
    "DataArtifact": ("Flow/run_id/step/task_id/name", "TrainFlow/12/train/3/score"),
}


def _bad(kind: str, pathspec: object, problem: str) -> UsageError:
    shape, example = _SHAPES[kind]
    return UsageError(
        f"{kind}({shown(pathspec, 200)}) is not a {kind} pathspec: {problem}; write it as "
        f"{shape}, e.g. "
        f"{kind}({example!r}), or reach it from its flow: Flow(name)[run_id]...",
        "pathspec",
    )


def parse_pathspec(kind: Kind, pathspec: object) -> list[str]:
    """The parts of ``pathspec`` for a ``kind`` object, checked.

    :raises UsageError: not a string; the wrong number of parts; an empty part; a run id or
        task id that is not a whole number.
    """
    if not isinstance(pathspec, str):
        return _raise(_bad(kind, pathspec, f"it is a {type(pathspec).__name__}, not a string"))
    parts = pathspec.split("/")
    want = len(_SHAPES[kind][0].split("/"))
    if len(parts) != want:
        return _raise(_bad(kind, pathspec, f"it has {len(parts)} part(s), not {want}"))
    for number, part in enumerate(parts, 1):
        if not part.strip():
            return _raise(_bad(kind, pathspec, f"its part {number} is empty"))
    for index, what in ((1, "run id"), (3, "task id")):
        if index < len(parts) and not (parts[index].isascii() and parts[index].isdecimal()):
            problem = f"the {what} {shown(parts[index])} is not a whole number"
            return _raise(_bad(kind, pathspec, problem))
    return parts


def _raise(error: UsageError) -> list[str]:
    raise error


def _find_plan(
    handle: StoreHandle, parts: list[str], ns: str | None
) -> Plan[Run | Step | Task | DataArtifact]:
    """Look up ``parts`` (checked by :func:`parse_pathspec`) in one snapshot.

    :raises NotFoundError: no such flow (lists the store's flows), run (the flow's runs,
        newest first), step (the run's steps), task (the step's task ids) or artifact (the
        task's artifact names).
    :raises NamespaceMismatchError: the run is outside the namespace set.
    """
    flow = parts[0]
    yield from check_plan(flow, handle.path, ns)
    number = _run_id(flow, parts[1])
    row = yield from q.run(flow, number)
    if row is None:
        raise (yield from missing_run_plan(flow, number, handle.path, shown=parts[1]))
    check_in_namespace(ns, f"{flow}/{row.id}", row.tags)
    run = Run._make(handle, row)
    if len(parts) == 2:
        return run
    step = run._step(parts[2], (yield from run._step_plan(parts[2])))
    if len(parts) == 3:
        return step
    task = step[parts[3]]
    if len(parts) == 4:
        return task
    from ._data import DataArtifact

    return DataArtifact._make(task, task._find((yield from task._index_plan()), parts[4]))


def open_path(
    kind: Kind, pathspec: object, store: StorePath, trust: bool
) -> Run | Step | Task | DataArtifact:
    """The object ``pathspec`` names, read from ``store`` (None: the default store, as for
    ``Flow(name)``), with a store handle of its own. Blocking.

    :raises UsageError: a malformed pathspec.
    :raises NotFoundError: a part of it does not exist (the message lists what does).
    :raises StoreError: there is no store file there.
    """
    parts = parse_pathspec(kind, pathspec)
    handle = StoreHandle(resolve_store_path(store), trust=trust)
    return handle.run(_find_plan(handle, parts, get_namespace()))


async def aopen_path(
    kind: Kind, pathspec: object, store: StorePath, trust: bool
) -> Run | Step | Task | DataArtifact:
    """The awaitable twin of :func:`open_path`."""
    parts = parse_pathspec(kind, pathspec)
    handle = StoreHandle(resolve_store_path(store), trust=trust)
    return await handle.arun(_find_plan(handle, parts, get_namespace()))
