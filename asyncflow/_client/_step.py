"""A step of a run: a snapshot of its finished tasks, in foreach-index order."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ._data import DataArtifact, DataView
from ._handle import Closing, StoreHandle
from ._messages import missing_task
from ._task import Task

if TYPE_CHECKING:
    from ._run import Run, StorePath

__all__ = ["Step", "Tasks"]


class Tasks(tuple[Task, ...]):
    """A step's tasks in index order: a tuple (``step.tasks[1]``, ``len(step.tasks)``) that is
    also callable as Metaflow's ``step.tasks(*tags)``, which returns an iterator of them.

    Tags belong to runs here (a task has none of its own, as a Metaflow task inherits its
    run's): ``step.tasks("nightly")`` yields every task if the run carries ``"nightly"``,
    else none.
    """

    _run_tags: frozenset[str]

    def __new__(cls, tasks: tuple[Task, ...], run_tags: frozenset[str] = frozenset()) -> Tasks:
        made = super().__new__(cls, tasks)
        made._run_tags = run_tags
        return made

    def __call__(self, *tags: str) -> Iterator[Task]:
        """An iterator of the tasks, in index order; none unless the run carries every tag."""
        if tags and not all(tag in self._run_tags for tag in tags):
            return iter(())
        return iter(tuple(self))


class Step(Closing):
    """The finished tasks of one step of a run, taken when the step was looked up.

    Iterating yields every task, ordered by foreach index path (numerically, level by
    level: ``"2"`` before ``"10"``, ``"1.2"`` before ``"1.10"``). None of the task lookups
    here does I/O; ``run[name]`` again gives a fresh snapshot.
    """

    __slots__ = ("__weakref__", "_name", "_run", "_tasks")

    def __init__(self, pathspec: str, store: StorePath = None, *, trust: bool = False) -> None:
        """Open step ``pathspec`` (``"Flow/12/train"``), as Metaflow's ``Step(...)``; the
        same step as ``Flow("Flow", store)["12"]["train"]``.

        :param store: the store file; None means the default store, as for ``Flow(name)``.
        :param trust: as for ``Flow(name, store, trust=True)``.
        :raises UsageError: ``pathspec`` is not ``Flow/run_id/step``.
        :raises NotFoundError: no such flow, run or step (the message lists what exists:
            the store's flows, the flow's runs newest first, or the run's steps).
        :raises StoreError: there is no store file there.

        The step has a store connection of its own (shared with its run and tasks):
        ``step.close()`` or ``with Step(...) as step:`` closes it.
        ``await Step.aopen(pathspec, store)`` is the awaitable twin.
        """
        from ._pathspec import open_path  # that module imports this one

        found = open_path("Step", pathspec, store, trust)
        assert isinstance(found, Step)
        self._setup(found._run, found._name, found._tasks)

    @classmethod
    def _make(cls, run: Run, name: str, tasks: tuple[Task, ...]) -> Step:
        step = cls.__new__(cls)
        step._setup(run, name, tasks)
        return step

    def _store_handle(self) -> StoreHandle:
        return self._run._handle

    def _setup(self, run: Run, name: str, tasks: tuple[Task, ...]) -> None:
        if not tasks:
            raise ValueError("a Step has at least one task")
        self._run = run
        self._name = name
        self._tasks = tuple(tasks)
        for task in self._tasks:
            task._step = weakref.ref(self)  # task.parent without a read; a weak ref: no cycle

    @property
    def name(self) -> str:
        """The step's name."""
        return self._name

    @property
    def id(self) -> str:
        """The step's name, as Metaflow's ``Step.id``."""
        return self._name

    @property
    def pathspec(self) -> str:
        """``Flow/run/step``."""
        return f"{self._run.pathspec}/{self._name}"

    @property
    def run(self) -> Run:
        """The run this step belongs to."""
        return self._run

    @property
    def parent(self) -> Run:
        """The run this step belongs to (Metaflow's name for :attr:`run`)."""
        return self._run

    @property
    def created_at(self) -> datetime:
        """When the step's first task started (UTC)."""
        return min(task.started_at for task in self._tasks)

    @property
    def finished_at(self) -> datetime:
        """When the last of the step's tasks finished (UTC), among the tasks of this snapshot
        (a step whose run is still running may get more)."""
        return max(task.finished_at for task in self._tasks)

    @property
    def task(self) -> Task:
        """The step's first task, in index order (its only one outside a foreach or split)."""
        return self._tasks[0]

    @property
    def tasks(self) -> Tasks:
        """Every task of the step, in index order: a tuple, and callable as Metaflow's
        ``step.tasks(*tags)`` (an iterator of them; see :class:`Tasks`)."""
        return Tasks(self._tasks, self._run.tags)

    @property
    def successful(self) -> bool:
        """True if every task of the step succeeded."""
        return all(task.successful for task in self._tasks)

    @property
    def data(self) -> DataView:
        """The artifacts of :attr:`task`: ``step.data.x`` is ``step.task.data.x``."""
        return self._tasks[0].data

    def __iter__(self) -> Iterator[Task]:
        return iter(self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)

    def __getitem__(self, task_id: str | int) -> Task:
        """The task with this id.

        :raises NotFoundError: the step has no such task (a KeyError).
        """
        for task in self._tasks:
            if task.id == str(task_id):
                return task
        raise missing_task(self.pathspec, task_id, [t.id for t in self._tasks])

    def __contains__(self, task_id: object) -> bool:
        return isinstance(task_id, str | int) and any(t.id == str(task_id) for t in self._tasks)

    async def adata(self, name: str) -> Any:
        """The value of artifact ``name`` of :attr:`task`; the twin of ``step.data.<name>``.

        :raises ArtifactNotFoundError: the task has no such artifact.
        :raises StoreError: the stored value is missing or cannot be decoded.
        """
        return await self._tasks[0].adata(name)

    async def aartifact(self, name: str) -> DataArtifact:
        """Artifact ``name`` of :attr:`task`; the twin of ``step.task[name]``.

        :raises ArtifactNotFoundError: the task has no such artifact.
        """
        return await self._tasks[0].aartifact(name)

    async def anames(self) -> list[str]:
        """The artifact names of :attr:`task`; the twin of ``list(step.data)``."""
        return await self._tasks[0].anames()

    def _key(self) -> tuple[Run, str]:
        return (self._run, self._name)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Step):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Step({self.pathspec!r})"

    def __reduce__(self) -> tuple[Any, tuple[Run, str, tuple[Task, ...]]]:
        return (Step._make, (self._run, self._name, self._tasks))
