"""A run of a flow: its record, parameters, steps and the data of its end task.

The run's record (its fields, and the writes to them: tags, trust) is ``_run_record``'s
``RunRecord``; ``Run`` adds what is read from the store when asked for.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .._spec._ends import stored_end_step
from .._store import _queries as q
from .._store._blobs import RawBlob
from .._store._events import Event
from .._store._plans import Plan
from .._store._rows import RunRow, TaskRow
from ._data import DataArtifact, DataView, adecode, decode_blob
from ._handle import Closing, StoreHandle, StorePath
from ._messages import missing_run_plan, missing_step, no_end_task, run_gone_plan
from ._run_events import aread_events, check_after, read_events
from ._run_record import RunRecord
from ._source import SourceRecord, adecode_source, decode_source
from ._step import Step
from ._task import Task
from ._trust import Gate, agate, gate

if TYPE_CHECKING:
    from ._archive import ArchiveManifest
    from ._flow import Flow

__all__ = ["Run", "StorePath", "step_order"]


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


class Run(RunRecord, Closing):
    """One run of a flow, as recorded when it was looked up (``refresh()`` reads it again).

    The record's fields (status, times, tags, graph) need no I/O; parameters, steps and data
    are read from the store when asked for, and each has an awaitable twin.

    A run recorded as running whose process is gone (killed, or its machine lost) is
    ``crashed``: judged from the run's lease when the record is read (see ``_store._lease``).
    """

    __slots__ = ("_end", "_params", "_source")

    def __init__(self, pathspec: str, store: StorePath = None, *, trust: bool = False) -> None:
        """Open run ``pathspec`` (``"Flow/12"``), as Metaflow's ``Run("Flow/12")``; the same
        run as ``Flow("Flow", store)["12"]``.

        :param store: the store file; None means the default store, as for ``Flow(name)``
            (inside a step, the run's own; else ``$ASYNCFLOW_STORE``; else the nearest
            ``asyncflow.db`` in the current directory or a parent).
        :param trust: as for ``Flow(name, store, trust=True)``.
        :raises UsageError: ``pathspec`` is not ``Flow/run_id`` (a run id is a whole number).
        :raises NotFoundError: no such flow or run (the message lists the store's flows, or
            the flow's runs newest first).
        :raises NamespaceMismatchError: the run is outside the namespace set.
        :raises StoreError: there is no store file there.

        The run has a store connection of its own: ``run.close()`` or ``with Run(...) as
        run:`` closes it (later reads reopen it); otherwise it closes when the run is
        collected. ``await Run.aopen(pathspec, store)`` is the awaitable twin.
        """
        from ._pathspec import open_path  # that module imports this one

        found = open_path("Run", pathspec, store, trust)
        assert isinstance(found, Run)
        self._setup(found._handle, found._row)

    @classmethod
    def _make(cls, handle: StoreHandle, row: RunRow) -> Run:
        run = cls.__new__(cls)
        run._setup(handle, row)
        return run

    def _setup(self, handle: StoreHandle, row: RunRow) -> None:
        RunRecord.__init__(self, handle, row)
        self._params: dict[str, Any] | None = None
        self._end: Task | None = None
        self._source: SourceRecord | None = None

    def _store_handle(self) -> StoreHandle:
        return self._handle

    @property
    def parent(self) -> Flow:
        """The run's flow (Metaflow's ``Run.parent``), sharing this run's connection."""
        from ._flow import Flow  # that module imports this one

        return Flow._make(self._handle, self._row.flow)

    # --- parameters -------------------------------------------------------------------------
    @property
    def parameters(self) -> dict[str, Any]:
        """The run's parameters, name to value (read once, then kept).

        :raises StoreError: a stored value is missing or cannot be decoded.
        :raises UntrustedArtifactError: a pickled value of a run that is not trusted, or not
            signed by you, or whose bytes do not match their hash.
        """
        if self._params is None:
            raws = self._handle.run(self._params_plan())
            self._params = {
                name: decode_blob(
                    raws[sha],
                    self._param_what(name),
                    self._handle.path,
                    self._param_gate(raws[sha], name),
                )
                for name, sha in self._row.params
            }
        return dict(self._params)

    async def aparameters(self) -> dict[str, Any]:
        """The awaitable twin of :attr:`parameters`.

        :raises StoreError: a stored value is missing or cannot be decoded.
        :raises UntrustedArtifactError: as :attr:`parameters`.
        """
        if self._params is None:
            raws = await self._handle.arun(self._params_plan())
            params: dict[str, Any] = {}
            for name, sha in self._row.params:
                checks = await self._aparam_gate(raws[sha], name)
                what = self._param_what(name)
                params[name] = await adecode(raws[sha], what, self._handle.path, checks)
            self._params = params
        return dict(self._params)

    def _param_gate(self, raw: RawBlob, name: str) -> Gate | None:
        return gate(self._handle, raw, self._row.flow, self._row.id, name, self.pathspec)

    async def _aparam_gate(self, raw: RawBlob, name: str) -> Gate | None:
        return await agate(self._handle, raw, self._row.flow, self._row.id, name, self.pathspec)

    # --- source -----------------------------------------------------------------------------
    @property
    def source(self) -> str | None:
        """The flow's source code as it was when the run started (read once, then kept).

        It is the whole module file that defines the flow class; for a class with no readable
        file (a notebook cell, say), the class's own source. A resumed run holds the code that
        resumed it. None when nothing could be read, and for runs stored before asyncflow
        kept sources (schema 3).

        :raises StoreError: the stored source is missing or damaged.
        """
        record = self._source_record()
        return None if record is None else record.text

    @property
    def source_path(self) -> str | None:
        """The absolute path of the file :attr:`source` was read from, when the run started.

        None when the run has no source, or when it is the class's own source, not a file's.

        :raises StoreError: the stored source is missing or damaged.
        """
        record = self._source_record()
        return None if record is None else (record.path or None)

    async def asource(self) -> str | None:
        """The awaitable twin of :attr:`source`.

        :raises StoreError: the stored source is missing or damaged.
        """
        record = await self._asource_record()
        return None if record is None else record.text

    async def asource_path(self) -> str | None:
        """The awaitable twin of :attr:`source_path`.

        :raises StoreError: the stored source is missing or damaged.
        """
        record = await self._asource_record()
        return None if record is None else (record.path or None)

    @property
    def code(self) -> str | None:
        """The flow file's source text as the run ran it: the whole module file that defines
        the flow class, read when the class was first run in its process, stored with the
        run (runs of the same text share one stored copy) and carried by its archives.

        None for a flow with no file of its own (defined in ``__main__`` under ``python -c``,
        or in a notebook cell: :attr:`source` then holds the class's own source), for a file
        over 8 MiB (not stored), and for runs stored before asyncflow kept sources.

        :raises StoreError: the stored source is missing or damaged.
        """
        record = self._source_record()
        return None if record is None or not record.path else record.text

    async def acode(self) -> str | None:
        """The awaitable twin of :attr:`code`.

        :raises StoreError: the stored source is missing or damaged.
        """
        record = await self._asource_record()
        return None if record is None or not record.path else record.text

    def _source_record(self) -> SourceRecord | None:
        sha = self._row.source_sha
        if sha is not None and self._source is None:
            raw = self._handle.run(q.blob(sha, self._handle.path))
            self._source = decode_source(raw, self.pathspec, self._handle.path)
        return self._source

    async def _asource_record(self) -> SourceRecord | None:
        sha = self._row.source_sha
        if sha is not None and self._source is None:
            raw = await self._handle.arun(q.blob(sha, self._handle.path))
            self._source = await adecode_source(raw, self.pathspec, self._handle.path)
        return self._source

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

    def steps(self, *tags: str) -> Iterator[Step]:
        """Metaflow's ``run.steps(*tags)``: an iterator of the steps that have tasks, in graph
        order; none unless the run carries every tag in ``tags`` (tags belong to runs)."""
        if not self._has_tags(tags):
            return iter(())
        return iter(self)

    async def asteps(self, *tags: str) -> list[Step]:
        """The twin of ``list(run)`` and of :meth:`steps`: the steps that have tasks, in graph
        order; none unless the run carries every tag in ``tags``."""
        if not self._has_tags(tags):
            return []
        return self._steps(await self._handle.arun(q.tasks(self._row.id)))

    def _has_tags(self, tags: tuple[str, ...]) -> bool:
        return all(tag in self._row.tags for tag in tags)

    async def acontains(self, name: str) -> bool:
        """The twin of ``name in run``."""
        return await self._handle.arun(q.has_step(self._row.id, name))

    # --- the end task and its data -------------------------------------------------------------
    @property
    def end_task(self) -> Task:
        """The task of the run's last step (``end``, or the step marked ``@step(end=True)``).

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

    # --- events -----------------------------------------------------------------------------
    def events(self, *, after: int = 0) -> list[Event]:
        """The run's events as stored so far, in order (``asyncflow.events``); a finished
        run's end with its ``RunFinished``. Runs recorded before asyncflow kept events have
        none. ``after``: only those after the event of this ``seq``.

        :raises UsageError: ``after`` is not an int ≥ 0.
        :raises StoreError: a stored event is not one asyncflow writes (the store is damaged).
        """
        return read_events(self._handle, self._row, check_after(after))

    def aevents(self, *, follow: bool = False, after: int = 0) -> AsyncIterator[Event]:
        """``async for ev in run.aevents(follow=True)``: the stored events in order, then,
        with ``follow``, those stored later by the process running it, until its
        ``RunFinished`` (or until the run is found crashed: its process is gone; the
        iteration then ends after its last stored event, with no ``RunFinished``, and
        ``(await run.arefresh()).status`` is ``"crashed"``). Polls the store: a run of
        another process is seen within about 0.1 s (benchmarks/RESULTS.md, "Events").
        ``after``: start after the event of this ``seq`` (to pick up where a reader was).

        :raises UsageError: ``after`` is not an int ≥ 0.
        :raises NotFoundError: the run is no longer in the store (gc deleted it).
        :raises StoreError: a stored event is not one asyncflow writes (the store is damaged).
        """
        return aread_events(self._handle, self._row, follow, check_after(after))

    # --- export -----------------------------------------------------------------------------
    def export(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> ArchiveManifest:
        """Write this run into a new run archive at ``path`` (see :func:`asyncflow.export_runs`).

        :raises StoreError: the run is still running, ``path`` exists (without ``overwrite``),
            or a file cannot be read or written.
        """
        from ._archive import export_runs

        return export_runs(path, [self], overwrite=overwrite)

    async def aexport(
        self, path: str | os.PathLike[str], *, overwrite: bool = False
    ) -> ArchiveManifest:
        """The awaitable twin of :meth:`export`."""
        from ._archive import aexport_runs

        return await aexport_runs(path, [self], overwrite=overwrite)

    # --- a fresh snapshot -------------------------------------------------------------------
    def refresh(self) -> Run:
        """This run as recorded now (e.g. to follow a run still running).

        :raises NotFoundError: the run is no longer in the store.
        """
        return Run._make(self._handle, self._handle.run(self._refresh_plan()))

    async def arefresh(self) -> Run:
        """The twin of :meth:`refresh`.

        :raises NotFoundError: the run is no longer in the store.
        """
        return Run._make(self._handle, await self._handle.arun(self._refresh_plan()))

    # --- the core shared by both forms ------------------------------------------------------
    def _param_what(self, name: str) -> str:
        return f"parameter {name!r} of run {self.pathspec}"

    def _params_plan(self) -> Plan[dict[bytes, RawBlob]]:
        return q.blobs([sha for _, sha in self._row.params], self._handle.path)

    def _refresh_plan(self) -> Plan[RunRow]:
        row = yield from q.run(self._row.flow, self._row.id)
        if row is None:
            raise (yield from missing_run_plan(self._row.flow, self._row.id, self._handle.path))
        return row

    def _missing_step_plan(self, name: str) -> Plan[Exception]:
        gone = yield from run_gone_plan(self._row.flow, self._row.id, self._handle.path)
        if gone is not None:
            return gone
        names = yield from q.step_names(self._row.id)
        order = step_order(self.graph)
        ordered = sorted(names, key=lambda n: order.index(n) if n in order else len(order))
        if name == stored_end_step(self.graph):
            return no_end_task(self.pathspec, self.status, ordered)
        return missing_step(self.pathspec, name, self.status, ordered, name in order)

    def _step_plan(self, name: str) -> Plan[list[TaskRow]]:
        rows = yield from q.tasks(self._row.id, name)
        if not rows:
            error = yield from self._missing_step_plan(name)
            raise error
        return rows

    def _end_plan(self) -> Plan[TaskRow]:
        rows = yield from self._step_plan(stored_end_step(self.graph))
        return rows[0]

    def _task(self, row: TaskRow) -> Task:
        return Task._make(self._handle, self._row.flow, row)

    def _step(self, name: str, rows: Sequence[TaskRow]) -> Step:
        return Step._make(self, name, tuple(self._task(row) for row in rows))

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

    def __reduce__(self) -> tuple[Any, tuple[StoreHandle, RunRow]]:
        return (Run._make, (self._handle, self._row))
