"""A finished task of a run: its record, its output and its artifacts."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from .._spec._settings import Resources
from .._store import _queries as q
from .._store._blobs import RawBlob
from .._store._plans import Plan
from .._store._queries import attempts
from .._store._rows import ArtifactRow, AttemptInfo, RunRow, TaskRow
from ._cards import Card, make_cards
from ._data import ArtifactsView, DataArtifact, DataView, adecode, decode_blob
from ._handle import Closing, StoreHandle
from ._messages import missing_artifact, missing_run_plan, run_gone_plan
from ._trust import Gate, agate, gate

if TYPE_CHECKING:
    from ._run import StorePath
    from ._step import Step

__all__ = ["Task", "utc"]

# Cards of more bytes than this are decoded in a worker thread by acards(), not on the loop.
_DECODE_ON_LOOP_BYTES = 1 << 18


def utc(timestamp: float) -> datetime:
    """A stored unix timestamp as an aware UTC datetime."""
    return datetime.fromtimestamp(timestamp, tz=UTC)


class Task(Closing):
    """One finished task (only finished tasks are stored).

    Everything but the captured output and the artifacts comes from the snapshot taken when
    the task was looked up, so reading it does no I/O. ``task.data.x`` reads one artifact on
    first access; ``task["x"]`` gives its :class:`DataArtifact`.
    """

    __slots__ = ("_data", "_flow", "_handle", "_index", "_logs", "_row", "_step")

    def __init__(self, pathspec: str, store: StorePath = None, *, trust: bool = False) -> None:
        """Open task ``pathspec`` (``"Flow/12/train/3"``), as Metaflow's ``Task(...)``; the
        same task as ``Flow("Flow", store)["12"]["train"]["3"]``.

        :param store: the store file; None means the default store, as for ``Flow(name)``.
        :param trust: as for ``Flow(name, store, trust=True)``.
        :raises UsageError: ``pathspec`` is not ``Flow/run_id/step/task_id`` (ids are whole
            numbers).
        :raises NotFoundError: no such flow, run, step or task (the message lists what
            exists: the store's flows, the flow's runs newest first, the run's steps, or the
            step's task ids).
        :raises StoreError: there is no store file there.

        The task has a store connection of its own: ``task.close()`` or ``with Task(...)
        as task:`` closes it. ``await Task.aopen(pathspec, store)`` is the awaitable twin.
        """
        from ._pathspec import open_path  # that module imports this one

        found = open_path("Task", pathspec, store, trust)
        assert isinstance(found, Task)
        self._setup(found._handle, found._flow, found._row)

    @classmethod
    def _make(cls, handle: StoreHandle, flow: str, row: TaskRow) -> Task:
        task = cls.__new__(cls)
        task._setup(handle, flow, row)
        return task

    def _store_handle(self) -> StoreHandle:
        return self._handle

    def _setup(self, handle: StoreHandle, flow: str, row: TaskRow) -> None:
        self._handle = handle
        self._flow = flow
        self._row = row
        self._data = DataView(self)
        self._index: dict[str, ArtifactRow] | None = None
        self._logs: tuple[str, str] | None = None
        self._step: weakref.ref[Step] | None = None  # set by the Step that holds this task

    # --- identity ---------------------------------------------------------------------------
    @property
    def id(self) -> str:
        """The task id (unique within its run)."""
        return str(self._row.id)

    @property
    def pathspec(self) -> str:
        """``Flow/run/step/task``."""
        row = self._row
        return f"{self._flow}/{row.run_id}/{row.step}/{row.id}"

    @property
    def flow_name(self) -> str:
        """The name of the task's flow."""
        return self._flow

    @property
    def run_id(self) -> str:
        """The id of the task's run."""
        return str(self._row.run_id)

    @property
    def step_name(self) -> str:
        """The name of the task's step."""
        return self._row.step

    @property
    def parent(self) -> Step:
        """The task's step (Metaflow's ``Task.parent``). No I/O while the step this task was
        reached through is still referenced; otherwise (``run.end_task``, an unpickled task)
        the step is read from the store (a fresh snapshot, with this task in it).

        :raises NotFoundError: the run is no longer in the store.
        """
        step = None if self._step is None else self._step()
        if step is None:
            step = self._make_step(*self._handle.run(self._parent_plan()))
        return step

    async def aparent(self) -> Step:
        """The awaitable twin of :attr:`parent`.

        :raises NotFoundError: the run is no longer in the store.
        """
        step = None if self._step is None else self._step()
        if step is None:
            step = self._make_step(*(await self._handle.arun(self._parent_plan())))
        return step

    def _parent_plan(self) -> Plan[tuple[RunRow, list[TaskRow]]]:
        run = yield from q.run(self._flow, self._row.run_id)
        if run is None:
            path = self._handle.path
            raise (yield from missing_run_plan(self._flow, self._row.run_id, path))
        rows = yield from q.tasks(self._row.run_id, self._row.step)
        return run, rows

    def _make_step(self, run_row: RunRow, rows: list[TaskRow]) -> Step:
        from ._run import Run  # that module imports this one
        from ._step import Step

        tasks = tuple(
            self if row.id == self._row.id else Task._make(self._handle, self._flow, row)
            for row in rows
        )
        return Step._make(Run._make(self._handle, run_row), self._row.step, tasks or (self,))

    @property
    def foreach_indices(self) -> tuple[int, ...]:
        """The task's index in each enclosing foreach, outermost first; ``()`` outside any."""
        return q.path_key(self._row.path)

    @property
    def index(self) -> int | None:
        """The task's index in its innermost foreach, or None outside any foreach."""
        indices = self.foreach_indices
        return indices[-1] if indices else None

    # --- outcome ----------------------------------------------------------------------------
    @property
    def status(self) -> str:
        """``"succeeded"`` or ``"failed"``."""
        return self._row.status

    @property
    def successful(self) -> bool:
        """True if the task succeeded."""
        return self._row.status == "succeeded"

    @property
    def finished(self) -> bool:
        """Always True: only finished tasks are stored."""
        return True

    @property
    def exception(self) -> str | None:
        """The exception that failed the task, as text, or None."""
        return self._row.exception

    @property
    def traceback(self) -> str | None:
        """The traceback of the exception that failed the task, or None."""
        return self._row.traceback

    @property
    def started_at(self) -> datetime:
        """When the task started (UTC)."""
        return utc(self._row.started_at)

    @property
    def created_at(self) -> datetime:
        """When the task started (UTC): Metaflow's name for :attr:`started_at`."""
        return utc(self._row.started_at)

    @property
    def finished_at(self) -> datetime:
        """When the task finished (UTC)."""
        return utc(self._row.finished_at)

    # --- captured output --------------------------------------------------------------------
    @property
    def retry_count(self) -> int:
        """How many times the task was retried (0: its first attempt was the last)."""
        return self._row.attempt

    @property
    def origin_task_id(self) -> str | None:
        """For a task cloned by ``resume``, the id of the task it copies (same run
        number as the run's ``origin_run_id``); else None."""
        oid = self._row.origin_task_id
        return None if oid is None else str(oid)

    @property
    def resources(self) -> Resources | None:
        """What the task's step declared it needs, as recorded with the run: ``@resources``
        (raised to ``@kubernetes``/``@batch``'s cpu, memory, gpu, disk, shared_memory), with
        ``--with`` included; None when it declared none. No I/O when the task was reached
        through its step (else the run's record is read, as for :attr:`parent`).
        """
        graph = self.parent.parent.graph
        for entry in graph.get("steps") or ():
            if isinstance(entry, dict) and entry.get("name") == self._row.step:
                return Resources.from_json(entry.get("resources"))
        return None

    @property
    def attempts(self) -> list[AttemptInfo]:
        """Every attempt, first to last: ``.attempt .status .exception .traceback
        .stdout .stderr .started_at .finished_at`` (the last one is this task's own record)."""
        return self._handle.run(attempts(self._row))

    async def aattempts(self) -> list[AttemptInfo]:
        """The awaitable twin of :attr:`attempts`."""
        return await self._handle.arun(attempts(self._row))

    @property
    def stdout(self) -> str:
        """What the task printed to stdout (``""`` if nothing); read on first access.

        :raises StoreError: the store cannot be read.
        """
        if self._logs is None:
            self._logs = self._handle.run(self._logs_plan())
        return self._logs[0]

    @property
    def stderr(self) -> str:
        """What the task printed to stderr (``""`` if nothing); read on first access.

        :raises StoreError: the store cannot be read.
        """
        if self._logs is None:
            self._logs = self._handle.run(self._logs_plan())
        return self._logs[1]

    async def astdout(self) -> str:
        """The awaitable twin of :attr:`stdout`.

        :raises StoreError: the store cannot be read.
        """
        if self._logs is None:
            self._logs = await self._handle.arun(self._logs_plan())
        return self._logs[0]

    async def astderr(self) -> str:
        """The awaitable twin of :attr:`stderr`.

        :raises StoreError: the store cannot be read.
        """
        if self._logs is None:
            self._logs = await self._handle.arun(self._logs_plan())
        return self._logs[1]

    # --- cards -----------------------------------------------------------------------------
    @property
    def cards(self) -> list[Card]:
        """The task's stored cards (``@card``), by index: read-only :class:`Card` values
        (``id``, ``type``, ``components``). Read on each access; ``[]`` for a task without
        cards, and for a run stored before cards were.

        :raises StoreError: a card cannot be read (the file is damaged there).
        """
        rows = self._handle.run(q.cards(self._row.run_id, self._row.id))
        raws = self._handle.run(q.blobs([row[3] for row in rows], self._handle.path))
        return make_cards(rows, raws, self.pathspec, self._handle.path)

    async def acards(self) -> list[Card]:
        """The awaitable twin of :attr:`cards`.

        :raises StoreError: a card cannot be read (the file is damaged there).
        """
        rows = await self._handle.arun(q.cards(self._row.run_id, self._row.id))
        raws = await self._handle.arun(q.blobs([row[3] for row in rows], self._handle.path))
        args = (rows, raws, self.pathspec, self._handle.path)
        if sum(raw.size for raw in raws.values()) > _DECODE_ON_LOOP_BYTES:
            return await anyio.to_thread.run_sync(make_cards, *args)
        return make_cards(*args)

    # --- artifacts: sync --------------------------------------------------------------------
    @property
    def data(self) -> DataView:
        """The task's artifacts as attributes: ``task.data.score`` (read on first access)."""
        return self._data

    @property
    def artifacts(self) -> ArtifactsView:
        """The task's artifacts as :class:`DataArtifact` attributes (Metaflow's
        ``task.artifacts``): ``task.artifacts.score.data``; reads no value until ``.data``."""
        return ArtifactsView(self)

    def __getitem__(self, name: str) -> DataArtifact:
        """The artifact ``name``, without reading its value.

        :raises ArtifactNotFoundError: the task has no such artifact (a KeyError).
        """
        return DataArtifact._make(self, self._find(self._artifact_index(), name))

    def __contains__(self, name: object) -> bool:
        """Whether the task has an artifact of that name (reads no value)."""
        return isinstance(name, str) and name in self._artifact_index()

    def __iter__(self) -> Iterator[DataArtifact]:
        """The task's artifacts, by name (reads no value)."""
        return iter([DataArtifact._make(self, row) for row in self._artifact_index().values()])

    # --- artifacts: async twins -------------------------------------------------------------
    async def adata(self, name: str) -> Any:
        """The value of artifact ``name``; the twin of ``task.data.<name>``.

        :raises ArtifactNotFoundError: the task has no such artifact.
        :raises StoreError: the stored value is missing or cannot be decoded.
        """
        values = self._data._values
        if name in values:
            return values[name]
        raw = await self._handle.arun(self._load_plan(name))
        checks = await self._agate(raw, name)
        value = await adecode(raw, self._what(name), self._handle.path, checks)
        return values.setdefault(name, value)

    async def aartifact(self, name: str) -> DataArtifact:
        """The artifact ``name``; the twin of ``task[name]``.

        :raises ArtifactNotFoundError: the task has no such artifact.
        """
        return DataArtifact._make(self, self._find(await self._aartifact_index(), name))

    async def anames(self) -> list[str]:
        """The names of the task's artifacts, sorted; the twin of ``list(task.data)``."""
        return list(await self._aartifact_index())

    async def acontains(self, name: str) -> bool:
        """Whether the task has artifact ``name``; the twin of ``name in task``."""
        return name in await self._aartifact_index()

    async def aartifacts(self) -> list[DataArtifact]:
        """The task's artifacts, by name; the twin of ``list(task)``."""
        return [DataArtifact._make(self, row) for row in (await self._aartifact_index()).values()]

    # --- the core shared by both forms ------------------------------------------------------
    def _index_plan(self) -> Plan[dict[str, ArtifactRow]]:
        if self._index is None:
            rows = yield from q.artifacts(self._row.run_id, self._row.id)
            if not rows:
                yield from self._check_run()
            self._index = {row.name: row for row in rows}
        return self._index

    def _logs_plan(self) -> Plan[tuple[str, str]]:
        logs = yield from q.task_logs(self._row.run_id, self._row.id)
        if logs == ("", ""):
            yield from self._check_run()
        return logs

    def _check_run(self) -> Plan[None]:
        # Nothing found: gc may have deleted the run after this task was opened.
        error = yield from run_gone_plan(self._flow, self._row.run_id, self._handle.path)
        if error is not None:
            raise error

    def _load_plan(self, name: str) -> Plan[RawBlob]:
        row = self._find((yield from self._index_plan()), name)
        return (yield from q.blob(row.sha, self._handle.path))

    def _artifact_index(self) -> dict[str, ArtifactRow]:
        if self._index is None:
            return self._handle.run(self._index_plan())
        return self._index

    async def _aartifact_index(self) -> dict[str, ArtifactRow]:
        if self._index is None:
            return await self._handle.arun(self._index_plan())
        return self._index

    def _find(self, index: dict[str, ArtifactRow], name: str) -> ArtifactRow:
        row = index.get(name)
        if row is None:
            raise missing_artifact(self.pathspec, name, list(index))
        return row

    def _what(self, name: str) -> str:
        return f"artifact {name!r} of task {self.pathspec}"

    def _gate(self, raw: RawBlob, name: str) -> Gate | None:
        # Safe loading (see _trust): a pickle asks its run's trust first.
        return gate(self._handle, raw, self._flow, self._row.run_id, name, self.pathspec)

    async def _agate(self, raw: RawBlob, name: str) -> Gate | None:
        return await agate(self._handle, raw, self._flow, self._row.run_id, name, self.pathspec)

    def _value(self, name: str) -> Any:
        values = self._data._values
        if name in values:
            return values[name]
        raw = self._handle.run(self._load_plan(name))
        value = decode_blob(raw, self._what(name), self._handle.path, self._gate(raw, name))
        return values.setdefault(name, value)

    def _value_of(self, row: ArtifactRow) -> Any:
        values = self._data._values
        if row.name in values:
            return values[row.name]
        raw = self._handle.run(q.blob(row.sha, self._handle.path))
        checks = self._gate(raw, row.name)
        return values.setdefault(
            row.name, decode_blob(raw, self._what(row.name), self._handle.path, checks)
        )

    async def _avalue_of(self, row: ArtifactRow) -> Any:
        values = self._data._values
        if row.name in values:
            return values[row.name]
        raw = await self._handle.arun(q.blob(row.sha, self._handle.path))
        checks = await self._agate(raw, row.name)
        value = await adecode(raw, self._what(row.name), self._handle.path, checks)
        return values.setdefault(row.name, value)

    # --- object protocol --------------------------------------------------------------------
    def _key(self) -> tuple[str, str, int, int]:
        return (self._handle.path, self._flow, self._row.run_id, self._row.id)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Task):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Task({self.pathspec!r})"

    def __reduce__(self) -> tuple[Any, tuple[StoreHandle, str, TaskRow]]:
        return (Task._make, (self._handle, self._flow, self._row))
