"""A run of a flow: its record, parameters, steps and the data of its end task."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from .._store import _queries as q
from .._store._blobs import RawBlob
from .._store._lease import run_crash
from .._store._queries import Plan, RunRow, TaskRow
from ._data import DataArtifact, DataView, adecode, decode_blob
from ._handle import StoreHandle
from ._messages import missing_run, missing_step, no_end_task
from ._step import Step
from ._task import Task, utc

__all__ = ["Run", "step_order"]

END_STEP = "end"


def step_order(graph: Any) -> list[str]:
    """The step names of a stored graph, parents before children (definition order on ties).

    :param graph: the run's graph JSON (``{"steps": [{"name", "in", ...}, ...]}``); anything
        else gives ``[]``.
    """
    steps = graph.get("steps") if isinstance(graph, dict) else None
    if not isinstance(steps, list):
        return []
    parents: dict[str, list[str]] = {}
    for node in steps:
        if isinstance(node, dict) and isinstance(node.get("name"), str):
            ins = node.get("in")
            parents[node["name"]] = (
                [p for p in ins if isinstance(p, str)] if isinstance(ins, list) else []
            )
    order: list[str] = []
    placed: set[str] = set()
    waiting = list(parents)
    while waiting:
        ready = next(
            (n for n in waiting if all(p in placed or p not in parents for p in parents[n])),
            waiting[0],  # a cycle (never stored by a valid flow): fall back on definition order
        )
        waiting.remove(ready)
        placed.add(ready)
        order.append(ready)
    return order


class Run:
    """One run of a flow, as recorded when it was looked up (``refresh()`` reads it again).

    The record's fields (status, times, tags, graph) need no I/O; parameters, steps and data
    are read from the store when asked for, and each has an awaitable twin.

    A run recorded as running whose process is gone (killed, or its machine lost) is
    ``crashed``: judged from the run's lease when the record is read (see ``_store._lease``).
    """

    __slots__ = ("_crash", "_end", "_handle", "_params", "_row")

    def __init__(self, handle: StoreHandle, row: RunRow) -> None:
        self._handle = handle
        self._row = row
        self._params: dict[str, Any] | None = None
        self._end: Task | None = None
        # Why the run is dead though its row says running, or None; judged once per snapshot.
        self._crash = run_crash(row)

    # --- the record -------------------------------------------------------------------------
    @property
    def id(self) -> str:
        """The run id."""
        return str(self._row.id)

    @property
    def pathspec(self) -> str:
        """``Flow/run``."""
        return f"{self._row.flow}/{self._row.id}"

    @property
    def flow_name(self) -> str:
        """The name of the run's flow."""
        return self._row.flow

    @property
    def status(self) -> str:
        """``"running"``, ``"succeeded"``, ``"failed"``, ``"cancelled"`` or ``"crashed"``.

        ``"crashed"``: the process running it ended without finishing it (it was killed, or
        its machine stopped); the tasks it finished are kept.
        """
        return "crashed" if self._crash is not None else self._row.status

    @property
    def successful(self) -> bool:
        """True if the run succeeded."""
        return self._row.status == "succeeded"

    @property
    def finished(self) -> bool:
        """True once the run succeeded, failed, was cancelled or crashed."""
        return self.status != "running"

    @property
    def created_at(self) -> datetime:
        """When the run started (UTC)."""
        return utc(self._row.created_at)

    @property
    def finished_at(self) -> datetime | None:
        """When the run ended (UTC), or None while it runs; for a crashed run, the last time
        its process was known to be alive (its last heartbeat)."""
        if self._crash is not None and self._row.heartbeat_at is not None:
            return utc(self._row.heartbeat_at)
        return None if self._row.finished_at is None else utc(self._row.finished_at)

    @property
    def tags(self) -> frozenset[str]:
        """The run's tags."""
        return frozenset(self._row.tags)

    @property
    def origin_run_id(self) -> str | None:
        """For a resumed run, the id of the run it resumed; else None."""
        origin = self._row.origin_run_id
        return None if origin is None else str(origin)

    @property
    def error(self) -> str | None:
        """Why the run failed, was cancelled or crashed, or None."""
        if self._crash is not None:
            return f"the run crashed: {self._crash}; the tasks it finished are kept"
        return self._row.error

    @property
    def graph(self) -> dict[str, Any]:
        """The flow's graph as stored with the run (a fresh dict from its JSON)."""
        graph = json.loads(self._row.graph)
        return graph if isinstance(graph, dict) else {"graph": graph}

    # --- parameters -------------------------------------------------------------------------
    @property
    def parameters(self) -> dict[str, Any]:
        """The run's parameters, name to value (read once, then kept).

        :raises StoreError: a stored value is missing or cannot be decoded.
        """
        if self._params is None:
            raws = self._handle.run(self._params_plan())
            self._params = {
                name: decode_blob(raws[sha], self._param_what(name), self._handle.path)
                for name, sha in self._row.params
            }
        return dict(self._params)

    async def aparameters(self) -> dict[str, Any]:
        """The awaitable twin of :attr:`parameters`.

        :raises StoreError: a stored value is missing or cannot be decoded.
        """
        if self._params is None:
            raws = await self._handle.arun(self._params_plan())
            params: dict[str, Any] = {}
            for name, sha in self._row.params:
                params[name] = await adecode(raws[sha], self._param_what(name), self._handle.path)
            self._params = params
        return dict(self._params)

    # --- steps ------------------------------------------------------------------------------
    def __getitem__(self, name: str) -> Step:
        """The step ``name``, with a snapshot of its tasks.

        :raises NotFoundError: the step has no task in this run (a KeyError).
        """
        return self._step(name, self._handle.run(self._step_plan(name)))

    def __iter__(self) -> Iterator[Step]:
        """The steps that have tasks, in graph order (parents first)."""
        return iter(self._steps(self._handle.run(q.tasks(self._row.id))))

    def __contains__(self, name: object) -> bool:
        """Whether step ``name`` has at least one task in this run."""
        return isinstance(name, str) and self._handle.run(q.has_step(self._row.id, name))

    async def astep(self, name: str) -> Step:
        """The twin of ``run[name]``.

        :raises NotFoundError: the step has no task in this run.
        """
        return self._step(name, await self._handle.arun(self._step_plan(name)))

    async def asteps(self) -> list[Step]:
        """The twin of ``list(run)``: the steps that have tasks, in graph order."""
        return self._steps(await self._handle.arun(q.tasks(self._row.id)))

    async def acontains(self, name: str) -> bool:
        """The twin of ``name in run``."""
        return await self._handle.arun(q.has_step(self._row.id, name))

    # --- the end task and its data -------------------------------------------------------------
    @property
    def end_task(self) -> Task:
        """The task of the run's end step.

        :raises ArtifactNotFoundError: the run did not reach its end step (also an
            AttributeError and a KeyError).
        """
        if self._end is None:
            self._end = self._task(self._handle.run(self._end_plan()))
        return self._end

    async def aend_task(self) -> Task:
        """The twin of :attr:`end_task`.

        :raises ArtifactNotFoundError: the run did not reach its end step.
        """
        if self._end is None:
            self._end = self._task(await self._handle.arun(self._end_plan()))
        return self._end

    @property
    def data(self) -> DataView:
        """The artifacts of the end task: ``run.data.total``.

        :raises ArtifactNotFoundError: the run did not reach its end step (also an
            AttributeError, so ``hasattr(run, "data")`` is False then).
        """
        return self.end_task.data

    async def adata(self, name: str) -> Any:
        """The value of the end task's artifact ``name``; the twin of ``run.data.<name>``.

        :raises ArtifactNotFoundError: no end task, or no such artifact.
        :raises StoreError: the stored value is missing or cannot be decoded.
        """
        return await (await self.aend_task()).adata(name)

    async def aartifact(self, name: str) -> DataArtifact:
        """The end task's artifact ``name``; the twin of ``run.end_task[name]``.

        :raises ArtifactNotFoundError: no end task, or no such artifact.
        """
        return await (await self.aend_task()).aartifact(name)

    async def anames(self) -> list[str]:
        """The end task's artifact names; the twin of ``list(run.data)``.

        :raises ArtifactNotFoundError: the run did not reach its end step.
        """
        return await (await self.aend_task()).anames()

    # --- a fresh snapshot -------------------------------------------------------------------
    def refresh(self) -> Run:
        """This run as recorded now (e.g. to follow a run still running).

        :raises NotFoundError: the run is no longer in the store.
        """
        return Run(self._handle, self._handle.run(self._refresh_plan()))

    async def arefresh(self) -> Run:
        """The twin of :meth:`refresh`.

        :raises NotFoundError: the run is no longer in the store.
        """
        return Run(self._handle, await self._handle.arun(self._refresh_plan()))

    # --- the core shared by both forms ------------------------------------------------------
    def _param_what(self, name: str) -> str:
        return f"parameter {name!r} of run {self.pathspec}"

    def _params_plan(self) -> Plan[dict[bytes, RawBlob]]:
        return q.blobs([sha for _, sha in self._row.params], self._handle.path)

    def _refresh_plan(self) -> Plan[RunRow]:
        row = yield from q.run(self._row.flow, self._row.id)
        if row is None:
            recent, total = yield from q.run_ids(self._row.flow, 10)
            raise missing_run(self._row.flow, self._row.id, self._handle.path, recent, total)
        return row

    def _missing_step_plan(self, name: str) -> Plan[Exception]:
        names = yield from q.step_names(self._row.id)
        order = step_order(self.graph)
        ordered = sorted(names, key=lambda n: order.index(n) if n in order else len(order))
        if name == END_STEP:
            return no_end_task(self.pathspec, self.status, ordered)
        return missing_step(self.pathspec, name, self.status, ordered, name in order)

    def _step_plan(self, name: str) -> Plan[list[TaskRow]]:
        rows = yield from q.tasks(self._row.id, name)
        if not rows:
            error = yield from self._missing_step_plan(name)
            raise error
        return rows

    def _end_plan(self) -> Plan[TaskRow]:
        rows = yield from self._step_plan(END_STEP)
        return rows[0]

    def _task(self, row: TaskRow) -> Task:
        return Task(self._handle, self._row.flow, row)

    def _step(self, name: str, rows: Sequence[TaskRow]) -> Step:
        return Step(self, name, tuple(self._task(row) for row in rows))

    def _steps(self, rows: Sequence[TaskRow]) -> list[Step]:
        by_step: dict[str, list[TaskRow]] = {}
        for row in rows:
            by_step.setdefault(row.step, []).append(row)
        order = step_order(self.graph)
        rank = {name: i for i, name in enumerate(order)}

        def key(name: str) -> tuple[int, int]:
            return (rank.get(name, len(rank)), min(r.id for r in by_step[name]))

        return [self._step(name, by_step[name]) for name in sorted(by_step, key=key)]

    # --- object protocol --------------------------------------------------------------------
    def _key(self) -> tuple[str, str, int]:
        return (self._handle.path, self._row.flow, self._row.id)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Run):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Run({self.pathspec!r})"

    def __reduce__(self) -> tuple[type[Run], tuple[StoreHandle, RunRow]]:
        return (Run, (self._handle, self._row))
