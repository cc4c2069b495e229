"""A flow in a store: the entry point of the client."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from types import TracebackType
from typing import Any

from .._errors import UsageError
from .._store import _queries as q
from .._store._paths import resolve_store_path
from .._store._plans import Plan, Query
from .._store._records import MAX_ID
from .._store._rows import RunRow
from .._store._runids import DELETED_KEY
from ._handle import StoreHandle, StorePath
from ._messages import bad_run_id, missing_run_plan, unknown_flow
from ._namespace import check_in_namespace, flow_outside_namespace, get_namespace, namespace_tags
from ._run import Run

__all__ = ["Flow", "FlowOpener", "StorePath", "alist_flows", "check_plan", "list_flows"]


def list_flows(store: StorePath = None) -> list[str]:
    """The names of the flows that have runs in a store, sorted; while a
    :func:`~asyncflow.namespace` is set, only those with a run in it.

    :param store: the store file; None means the default store (inside a step, the run's
        own; else ``$ASYNCFLOW_STORE``; else the nearest ``asyncflow.db`` in the current
        directory or a parent).
    :raises StoreError: there is no store file there.
    :raises StoreFormatError: the file is not an asyncflow store, or is from a newer one.
    """
    handle = StoreHandle(resolve_store_path(store))
    try:
        return handle.run(q.flow_names(get_namespace()))
    finally:
        handle.close()


async def alist_flows(store: StorePath = None) -> list[str]:
    """The awaitable twin of :func:`list_flows`.

    :raises StoreError: there is no store file there.
    :raises StoreFormatError: the file is not an asyncflow store, or is from a newer one.
    """
    return await StoreHandle(resolve_store_path(store)).arun(q.flow_names(get_namespace()))


def _run_id(flow: str, run_id: object) -> int:
    """The run id ``run_id`` names (an int, or its digits as text): parsed here only.

    A whole number too large for any run id (past ``2**63 - 1``, however many digits) is
    returned as ``MAX_ID + 1``, which the read plans find no run for (NotFoundError, with
    the flow's recent runs), instead of being parsed or sent to SQLite.

    :raises NotFoundError: ``run_id`` is not a whole number at all.
    """
    if isinstance(run_id, bool) or not isinstance(run_id, int | str):
        raise bad_run_id(flow, run_id)
    if isinstance(run_id, str):
        text = run_id.strip()
        if not text.isdecimal():  # what int() reads, and nothing else
            raise bad_run_id(flow, run_id)
        digits = text.lstrip("0")
        if len(digits) > len(str(MAX_ID)):  # before int(): 5,000 digits are refused there
            return MAX_ID + 1
        run_id = int(text)
    assert isinstance(run_id, int)
    return run_id if run_id <= MAX_ID else MAX_ID + 1


def _limit(limit: object) -> int | None:
    """``limit`` checked: None (no limit) or a whole number from 0 to ``2**63 - 1``.

    :raises UsageError: anything else.
    """
    if limit is None or (type(limit) is int and 0 <= limit <= MAX_ID):
        return limit
    raise UsageError(
        f"limit={limit!r} is not a number of runs: pass a whole number from 0 to 2**63 - 1, "
        "or None for every run.",
        "limit",
    )


class Flow:
    """The runs of one flow in a store file.

    ``Flow(name, store)`` checks, reading the store, that the flow has runs; in async code
    use ``await Flow.aopen(name, store)`` instead. The sync reads of a Flow and of everything
    read through it share one connection, opened on first use; ``with flow:`` closes it at
    the end. Each awaitable read opens a short-lived connection of its own, unless inside
    ``async with Flow.aopen(...) as flow:`` (or ``async with flow:``), where they share one.

    :param name: the flow's name (its class name).
    :param store: the store file; None means the default store (inside a step, the run's
        own; else ``$ASYNCFLOW_STORE``; else the nearest ``asyncflow.db`` in the current
        directory or a parent).
    :param trust: load pickled values of every run read through this flow, whoever wrote
        them, provided their bytes are intact. Unpickling runs code: pass True only for a
        store or archive whose author you trust (see the README, "Safe loading of other
        people's runs"). msgpack and numpy values load either way.
    :raises StoreError: there is no store file there.
    :raises StoreFormatError: the file is not an asyncflow store, or is from a newer one.
    :raises NotFoundError: the store has no run of this flow (the message lists its flows).
    :raises NamespaceMismatchError: it has, but none in the :func:`~asyncflow.namespace` set.

    While a namespace is set (:func:`asyncflow.namespace`), the flow's listings show only
    the runs carrying it, and ``flow[run_id]`` refuses a run outside it.
    """

    __slots__ = ("_handle", "_name")

    def __init__(self, name: str, store: StorePath = None, *, trust: bool = False) -> None:
        handle = StoreHandle(resolve_store_path(store), trust=trust)
        handle.run(check_plan(name, handle.path, get_namespace()))
        self._handle = handle
        self._name = name

    @classmethod
    def aopen(cls, name: str, store: StorePath = None, *, trust: bool = False) -> FlowOpener:
        """The awaitable twin of ``Flow(name, store, trust=trust)``.

        ``flow = await Flow.aopen(name, store)`` gives a Flow whose awaitable reads each
        open a short-lived connection; ``async with Flow.aopen(name, store) as flow:``
        gives one whose awaitable reads share a connection until the block ends.

        :raises StoreError: (when awaited) there is no store file there.
        :raises StoreFormatError: the file is not an asyncflow store, or is from a newer one.
        :raises NotFoundError: the store has no run of this flow.
        """
        return FlowOpener(name, store, trust)

    @classmethod
    def _make(cls, handle: StoreHandle, name: str) -> Flow:
        flow = cls.__new__(cls)
        flow._handle = handle
        flow._name = name
        return flow

    @property
    def name(self) -> str:
        """The flow's name."""
        return self._name

    @property
    def id(self) -> str:
        """The flow's name, as Metaflow's ``Flow.id``."""
        return self._name

    @property
    def pathspec(self) -> str:
        """The flow's name (the root of every pathspec)."""
        return self._name

    @property
    def store(self) -> str:
        """The absolute path of the store file."""
        return self._handle.path

    # --- runs -------------------------------------------------------------------------------
    @property
    def latest_run(self) -> Run | None:
        """The newest run, whatever its status, or None."""
        return self._first(self._handle.run(self._latest_plan(None)))

    @property
    def latest_successful_run(self) -> Run | None:
        """The newest run that succeeded, or None."""
        return self._first(self._handle.run(self._latest_plan("succeeded")))

    def runs(self, *tags: str, tag: str | None = None, limit: int | None = None) -> list[Run]:
        """The flow's runs, newest first.

        :param tags: keep runs that carry every one of these tags.
        :param tag: one more tag to require (``runs(tag="nightly")``).
        :param limit: return at most this many runs.
        """
        return self._runs(self._handle.run(self._runs_plan(tags, tag, limit)))

    def __iter__(self) -> Iterator[Run]:
        """Every run of the flow, newest first."""
        return iter(self.runs())

    def __getitem__(self, run_id: str | int) -> Run:
        """The run with this id (``"12"`` or ``12``).

        :raises NotFoundError: no such run of this flow (a KeyError; lists recent run ids).
        :raises NamespaceMismatchError: the run is outside the namespace set.
        """
        plan = self._get_plan(_run_id(self._name, run_id), run_id, get_namespace())
        return Run._make(self._handle, self._handle.run(plan))

    def __contains__(self, run_id: object) -> bool:
        """Whether the flow has a run with this id."""
        try:
            number = _run_id(self._name, run_id)
        except KeyError:
            return False
        return self._in_namespace(self._handle.run(q.run(self._name, number)))

    # --- the awaitable twins ----------------------------------------------------------------
    async def alatest_run(self) -> Run | None:
        """The twin of :attr:`latest_run`."""
        return self._first(await self._handle.arun(self._latest_plan(None)))

    async def alatest_successful_run(self) -> Run | None:
        """The twin of :attr:`latest_successful_run`."""
        return self._first(await self._handle.arun(self._latest_plan("succeeded")))

    async def aruns(
        self, *tags: str, tag: str | None = None, limit: int | None = None
    ) -> list[Run]:
        """The twin of :meth:`runs` (and of ``list(flow)``)."""
        return self._runs(await self._handle.arun(self._runs_plan(tags, tag, limit)))

    async def aget(self, run_id: str | int) -> Run:
        """The twin of ``flow[run_id]``.

        :raises NotFoundError: no such run of this flow.
        """
        plan = self._get_plan(_run_id(self._name, run_id), run_id, get_namespace())
        return Run._make(self._handle, await self._handle.arun(plan))

    async def acontains(self, run_id: str | int) -> bool:
        """The twin of ``run_id in flow``."""
        try:
            number = _run_id(self._name, run_id)
        except KeyError:
            return False
        return self._in_namespace(await self._handle.arun(q.run(self._name, number)))

    # --- connections ------------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection this flow's objects share; later reads reopen it."""
        self._handle.close()

    def __enter__(self) -> Flow:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Flow:
        await self._handle.aenter()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._handle.aexit()

    # --- the core shared by both forms ------------------------------------------------------
    def _runs_plan(
        self, tags: tuple[str, ...], tag: str | None, limit: int | None
    ) -> Plan[list[RunRow]]:
        wanted = (*tags, tag) if tag is not None else tags
        wanted += namespace_tags(get_namespace())
        return q.runs(self._name, tags=wanted, limit=_limit(limit))

    def _latest_plan(self, status: str | None) -> Plan[list[RunRow]]:
        tags = namespace_tags(get_namespace())
        return q.runs(self._name, tags=tags, status=status, limit=1)

    def _get_plan(self, number: int, asked: object, ns: str | None) -> Plan[RunRow]:
        row = yield from q.run(self._name, number)
        if row is None:
            path = self._handle.path
            raise (yield from missing_run_plan(self._name, number, path, shown=asked))
        check_in_namespace(ns, f"{self._name}/{row.id}", row.tags)
        return row

    @staticmethod
    def _in_namespace(row: RunRow | None) -> bool:
        ns = get_namespace()
        return row is not None and (ns is None or ns in row.tags)

    def _first(self, rows: list[RunRow]) -> Run | None:
        return Run._make(self._handle, rows[0]) if rows else None

    def _runs(self, rows: list[RunRow]) -> list[Run]:
        return [Run._make(self._handle, row) for row in rows]

    # --- object protocol --------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Flow):
            return NotImplemented
        return (self._handle.path, self._name) == (other._handle.path, other._name)

    def __hash__(self) -> int:
        return hash((self._handle.path, self._name))

    def __repr__(self) -> str:
        return f"Flow({self._name!r})"

    def __reduce__(self) -> tuple[object, tuple[StoreHandle, str]]:
        return (Flow._make, (self._handle, self._name))


class FlowOpener:
    """What :meth:`Flow.aopen` returns: await it, or use it with ``async with``."""

    __slots__ = ("_flow", "_name", "_namespace", "_store", "_trust")

    def __init__(self, name: str, store: StorePath, trust: bool = False) -> None:
        self._namespace = get_namespace()  # the one in force when aopen() was called
        self._name = name
        self._store = store
        self._trust = trust
        self._flow: Flow | None = None

    def __await__(self) -> Generator[Any, None, Flow]:
        return self._open(shared=False).__await__()

    async def __aenter__(self) -> Flow:
        self._flow = await self._open(shared=True)
        return self._flow

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._flow is not None:
            await self._flow.__aexit__(exc_type, exc, tb)

    async def _open(self, *, shared: bool) -> Flow:
        handle = StoreHandle(resolve_store_path(self._store), trust=self._trust)
        if shared:
            await handle.aenter()
        try:
            await handle.arun(check_plan(self._name, handle.path, self._namespace))
        except BaseException:
            if shared:
                await handle.aexit()
            raise
        return Flow._make(handle, self._name)


# Whether gc noted deleting a run of the flow (see _store._runids.DELETED_KEY).
_GC_DELETED_ANY = (
    "SELECT 1 FROM store_info WHERE key LIKE ? AND CASE WHEN json_valid(value) "
    "THEN json_extract(value, '$.flow') END = ? LIMIT 1"
)


def check_plan(name: str, path: str, ns: str | None = None) -> Plan[None]:
    """Raise :class:`NotFoundError` (listing the store's flows) unless ``name`` has runs,
    :class:`NamespaceMismatchError` unless one of them is in namespace ``ns`` (if not None)."""
    if not (yield from q.flow_exists(name)):
        if (yield Query(_GC_DELETED_ANY, (f"{DELETED_KEY}%", name))):
            return  # gc deleted all its runs: reading one says so (C71)
        flows = yield from q.flow_names()
        raise unknown_flow(name, path, flows)
    if ns is not None and not (yield from q.flow_exists(name, ns)):
        raise flow_outside_namespace(ns, name, path)
