"""A task's artifacts: ``task.data`` (a :class:`DataView`) and ``task["x"]`` (a DataArtifact).

Values are read on first access, one blob at a time, decoded, then kept by the view, so
listing the names of a task's artifacts never reads or decodes a value.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from .._codecs import CodecError, DecodeBudgetError, decode
from .._errors import ArtifactLoadError, StoreError
from .._store import _queries as q
from .._store._blobs import RawBlob
from .._store._rows import ArtifactRow
from ._handle import Closing, StoreHandle
from ._trust import Gate, budget_refusal, decode_budget, refusal

if TYPE_CHECKING:
    from ._run import StorePath
    from ._task import Task

__all__ = ["ArtifactsView", "DataArtifact", "DataView", "adecode", "decode_blob"]

# Decoding a payload this large, or any pickle (which runs arbitrary code), happens in a
# worker thread when called from async code, so the event loop is never held up.
_OFFLOAD_BYTES = 1 << 18


def decode_blob(raw: RawBlob, what: str, path: str, gate: Gate | None) -> Any:
    """Decode a blob read for ``what`` (e.g. "artifact 'x' of task F/1/s/2").

    :param gate: for a pickle, what decides whether it may be unpickled, and for a large
        msgpack value what it may build (see ``_trust``); None for other values.
    :raises UntrustedArtifactError: a pickle that its run's trust, its signature or its
        hash forbids to unpickle.
    :raises ArtifactLoadError: a pickle whose class's module cannot be imported here.
    :raises StoreError: the bytes cannot be decoded, or a msgpack value of a run that is not
        trusted would build more than its budget.
    """
    refused = refusal(raw, what, gate)
    if refused is not None:
        raise refused
    budget = decode_budget(raw, gate)
    try:
        return decode(raw.encoding, raw.meta, raw.payload, budget)
    except DecodeBudgetError as exc:
        assert gate is not None and budget is not None
        raise budget_refusal(raw, what, gate, budget) from exc
    except CodecError as exc:
        missing = None
        if gate is not None and raw.encoding == "pickle":  # its module may not be here
            missing = ArtifactLoadError.from_decoding(exc, what, gate.name, gate.pathspec)
        if missing is not None:
            raise missing from exc
        raise StoreError(
            f"cannot load {what} ({raw.encoding}, {raw.size} bytes) from {path!r}: {exc}. If "
            "the value is an object of your own class, read it where that class's module can "
            "be imported.",
            path,
        ) from exc


async def adecode(raw: RawBlob, what: str, path: str, gate: Gate | None) -> Any:
    """:func:`decode_blob`, in a worker thread for large or pickled values."""
    if raw.encoding == "pickle" or raw.size > _OFFLOAD_BYTES:
        return await anyio.to_thread.run_sync(decode_blob, raw, what, path, gate)
    return decode_blob(raw, what, path, gate)


class DataView:
    """The artifacts of one task as attributes: ``task.data.score``.

    Each value is read from the store on first access and then kept by this view.
    ``"score" in view`` and ``list(view)`` use the names only and read no value. Names
    starting with ``_`` are never artifacts, so probing them costs nothing.

    :raises ArtifactNotFoundError: (on access) no artifact of that name; it is both an
        AttributeError and a KeyError.
    """

    __slots__ = ("_task", "_values")

    def __init__(self, task: Task) -> None:
        self._task = task
        self._values: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._task._value(name)

    def __getitem__(self, name: str) -> Any:
        return self._task._value(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._task._artifact_index()

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._task._artifact_index()))

    def __len__(self) -> int:
        return len(self._task._artifact_index())

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._task._artifact_index()))

    def __repr__(self) -> str:
        return f"DataView({self._task.pathspec!r})"

    def __reduce__(self) -> tuple[Any, tuple[Task]]:
        # Unpickles as the view of the unpickled task (values are read again on access).
        return (operator.attrgetter("data"), (self._task,))


class ArtifactsView:
    """The artifacts of one task as :class:`DataArtifact` attributes, Metaflow's
    ``task.artifacts``: ``task.artifacts.score.data``, ``for art in task.artifacts``.

    Reads names only; a value is read when its ``.data`` is.

    :raises ArtifactNotFoundError: (on access) no artifact of that name; it is both an
        AttributeError and a KeyError.
    """

    __slots__ = ("_task",)

    def __init__(self, task: Task) -> None:
        self._task = task

    def __getattr__(self, name: str) -> DataArtifact:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._task[name]

    def __getitem__(self, name: str) -> DataArtifact:
        return self._task[name]

    def __contains__(self, name: object) -> bool:
        return name in self._task

    def __iter__(self) -> Iterator[DataArtifact]:
        return iter(self._task)

    def __len__(self) -> int:
        return len(self._task._artifact_index())

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._task._artifact_index()))

    def __repr__(self) -> str:
        return f"ArtifactsView({self._task.pathspec!r})"


class DataArtifact(Closing):
    """One artifact of a task: its name, what is stored, and its value on demand.

    ``.data`` reads and decodes the value on first access (shared with ``task.data``);
    ``await art.adata()`` is its twin. ``.sha`` is the hex content address, ``.size`` the
    stored payload's length in bytes, ``.encoding`` the codec id (``"msgpack"``,
    ``"numpy"``, ``"pickle"``).
    """

    __slots__ = ("_row", "_task")

    _task: Task
    _row: ArtifactRow

    def __init__(self, pathspec: str, store: StorePath = None, *, trust: bool = False) -> None:
        """Open artifact ``pathspec`` (``"Flow/12/train/3/score"``), as Metaflow's
        ``DataArtifact(...)``; the same artifact as ``Flow("Flow", store)["12"]["train"]["3"]
        ["score"]``. Its value is read when ``.data`` is.

        :param store: the store file; None means the default store, as for ``Flow(name)``.
        :param trust: as for ``Flow(name, store, trust=True)``.
        :raises UsageError: ``pathspec`` is not ``Flow/run_id/step/task_id/name``.
        :raises NotFoundError: no such flow, run, step or task (the message lists what
            exists); :class:`ArtifactNotFoundError` (a NotFoundError) for no such artifact,
            listing the task's artifact names.
        :raises StoreError: there is no store file there.

        The artifact has a store connection of its own (its task's): ``art.close()`` or
        ``with DataArtifact(...) as art:`` closes it. ``await DataArtifact.aopen(pathspec,
        store)`` is the awaitable twin.
        """
        from ._pathspec import open_path  # that module imports this one

        found = open_path("DataArtifact", pathspec, store, trust)
        assert isinstance(found, DataArtifact)
        self._task = found._task
        self._row = found._row

    @classmethod
    def _make(cls, task: Task, row: ArtifactRow) -> DataArtifact:
        art = cls.__new__(cls)
        art._task = task
        art._row = row
        return art

    def _store_handle(self) -> StoreHandle:
        return self._task._handle

    @property
    def name(self) -> str:
        """The artifact's name."""
        return self._row.name

    @property
    def sha(self) -> str:
        """The sha256 content address of the stored value, in hex."""
        return self._row.sha.hex()

    @property
    def size(self) -> int:
        """The stored payload's length in bytes."""
        return self._row.size

    @property
    def encoding(self) -> str:
        """The codec that stored the value: ``"msgpack"``, ``"numpy"`` or ``"pickle"``."""
        return self._row.encoding

    @property
    def pathspec(self) -> str:
        """``Flow/run/step/task/name``."""
        return f"{self._task.pathspec}/{self._row.name}"

    @property
    def task(self) -> Task:
        """The task that holds this artifact."""
        return self._task

    @property
    def data(self) -> Any:
        """The value, read and decoded on first access, then kept.

        :raises StoreError: the stored bytes are missing or cannot be decoded.
        """
        return self._task._value_of(self._row)

    async def adata(self) -> Any:
        """The value; the awaitable twin of :attr:`data`.

        :raises StoreError: the stored bytes are missing or cannot be decoded.
        """
        return await self._task._avalue_of(self._row)

    def _raw(self) -> RawBlob:
        # The stored form, undecoded: for tools that copy bytes (``asyncflow dump --raw``).
        handle = self._task._handle
        return handle.run(q.blob(self._row.sha, handle.path))

    def __repr__(self) -> str:
        return f"DataArtifact({self.pathspec!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DataArtifact):
            return NotImplemented
        return self._task == other._task and self._row == other._row

    def __hash__(self) -> int:
        return hash((self._task, self._row.name))

    def __reduce__(self) -> tuple[Any, tuple[Task, ArtifactRow]]:
        return (DataArtifact._make, (self._task, self._row))
