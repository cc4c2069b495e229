"""The two thin drivers that run the store's read plans, and the handle objects share.

:func:`drive` runs a plan on a ``sqlite3`` connection; :func:`adrive` runs the same plan on
an ``aiosqlite`` connection, whose thread does the blocking work, so the event loop never
waits on SQLite. Both open the file through :func:`~asyncflow._store._db.open_reader`:
read-only, with the same format checks and busy timeout.

A :class:`StoreHandle` is what every client object of one store holds. It keeps one sync
connection, opened on first use. Async reads open a short-lived connection each, unless the
flow is inside ``async with``: then they share one. A handle pickles as its path and its
``trust`` flag.
"""

from __future__ import annotations

import asyncio
import os
import queue
import sqlite3
import threading
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Self, TypeVar

import aiosqlite
import aiosqlite.core
import anyio
import anyio.to_thread

from .._errors import StoreError
from .._store._blobs import INLINE_LIMIT, RawBlob
from .._store._db import open_reader
from .._store._drive import drive
from .._store._format import is_archive
from .._store._manifest import check_blob, verify_records
from .._store._plans import BEGIN_READ, END_READ, Plan, Query, Rows, record_error
from .._store._sqlerrors import SQLITE_FAILURES, is_busy, store_error
from .._store._trust import TrustKey

__all__ = [
    "Closing",
    "StoreHandle",
    "StorePath",
    "aconnect",
    "adrive",
    "check_blobs",
    "drive",
    "open_checked",
]

T = TypeVar("T")
StorePath = str | os.PathLike[str] | None  # a store file argument; None: the default store


def _read_error(path: str, exc: sqlite3.Error | UnicodeDecodeError) -> StoreError:
    return store_error(exc, path, "read")


_STOP_RUNNING = aiosqlite.core._STOP_RUNNING_SENTINEL

# Retries of one statement that finds the file locked (each after SQLite's own busy wait).
_BUSY_ATTEMPTS = 50


async def _afetch(conn: aiosqlite.Connection, query: Query) -> Rows:
    # The twin of retry_busy: in WAL a read waits only in rare moments (another process
    # recovering the log, or closing the last connection), but it must not fail then.
    delay = 0.01
    for attempt in range(_BUSY_ATTEMPTS):
        try:
            return list(await conn.execute_fetchall(query.sql, query.params))
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or attempt == _BUSY_ATTEMPTS - 1:
                raise
        await anyio.sleep(delay)
        delay = min(delay * 2, 0.5)
    raise AssertionError("unreachable")


async def adrive(conn: aiosqlite.Connection, plan: Plan[T], path: str) -> T:
    """Run ``plan`` on ``conn`` inside one read transaction; the twin of :func:`drive`.

    :raises StoreError: SQLite failed (the message names the file).
    """
    try:
        # Shielded: once queued, BEGIN runs anyway, and only the finally below may end it.
        with anyio.CancelScope(shield=True):
            await conn.execute_fetchall(BEGIN_READ)
        try:
            query = next(plan)
            while True:
                rows = await _afetch(conn, query)
                try:
                    query = plan.send(rows)
                except (TypeError, ValueError) as exc:
                    raise record_error(exc, path) from exc
        except StopIteration as done:
            result: T = done.value
            return result
        finally:
            plan.close()
            # Even when cancelled: a shared connection must not stay inside the transaction.
            with anyio.CancelScope(shield=True):
                await conn.execute_fetchall(END_READ)
    except SQLITE_FAILURES as exc:
        raise _read_error(path, exc) from exc


def _file_key(path: str) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def open_checked(path: str, checked: set[tuple[int, int, int, int]]) -> sqlite3.Connection:
    """:func:`open_reader`, and for a run archive, the check of its records (once per
    version of the file: ``checked`` remembers the files already checked). Blocking.

    :raises StoreError: no store there, or an archive that is damaged or was edited.
    """
    conn = open_reader(path)
    try:
        try:
            archive = is_archive(conn)
        except SQLITE_FAILURES as exc:
            raise store_error(exc, path, "read") from exc
        if archive:
            key = _file_key(path)
            if key not in checked:
                try:
                    conn.execute(BEGIN_READ)
                    verify_records(conn, path)
                finally:
                    if conn.in_transaction:
                        conn.execute(END_READ)
                checked.add(key)
    except BaseException:
        conn.close()
        raise
    return conn


# In a store, blobs up to this size are checked against their sha on every read: hashing
# them costs little beside reading them. Larger ones are checked by import, archive reads and
# verify, and pickles at every read (see _trust); hashing each 100 MB array a plain store read
# would double its load time (benchmarks/RESULTS.md).
STORE_CHECK_BYTES = INLINE_LIMIT
# Bytes hashed on the event loop itself; more go to a worker thread.
_HASH_ON_LOOP_BYTES = 1 << 16


def check_blobs(result: object, path: str, *, archive: bool = True) -> None:
    """Check blobs in a plan's result against their sha (a blob, or a dict of blobs): every
    one read from an archive; from a store, those of at most :data:`STORE_CHECK_BYTES` but
    pickles."""
    found = [result] if isinstance(result, RawBlob) else []
    if isinstance(result, dict):
        found = [value for value in result.values() if isinstance(value, RawBlob)]
    for raw in found:
        # A store's pickles are checked by the read that would unpickle them (see _trust),
        # which refuses them with UntrustedArtifactError.
        if archive or (raw.size <= STORE_CHECK_BYTES and raw.encoding != "pickle"):
            check_blob(raw, path, archive=archive)


async def _aopen(path: str, checked: set[tuple[int, int, int, int]]) -> aiosqlite.Connection:
    # open_reader runs (and fails, if it must) in a worker thread of ours: a connector that
    # fails inside aiosqlite leaves its thread reporting to a loop that may be gone.
    raw = await anyio.to_thread.run_sync(open_checked, path, checked)
    conn = aiosqlite.Connection(lambda: raw, iter_chunk_size=64)
    try:
        with anyio.CancelScope(shield=True):
            await conn
    except BaseException:
        raw.close()
        raise
    return conn


def _stop(conn: aiosqlite.Connection) -> None:
    # aiosqlite's stop() without the future it makes: its thread would report the close to
    # a loop that may be closed by then (a traceback from the thread). The thread skips the
    # report when there is no future.
    tx = getattr(conn, "_tx", None)
    if tx is None:  # another aiosqlite than the one this was written for
        conn.stop()
        return
    conn._running = False
    # Drop what waits in the thread's queue (its callers are gone): run later, it would
    # report to a loop that may be closed by then, which the thread prints as a traceback.
    while True:
        try:
            future, _ = tx.get_nowait()
        except queue.Empty:
            break
        if future is not None and not future.done():
            future.cancel()

    def close_and_stop() -> object:
        # In the thread, after what was queued before it, which still finds its connection.
        raw, conn._connection = conn._connection, None
        if raw is not None:
            raw.close()
        return _STOP_RUNNING

    tx.put_nowait((None, close_and_stop))


@asynccontextmanager
async def aconnect(
    path: str, checked: set[tuple[int, int, int, int]] | None = None
) -> AsyncIterator[aiosqlite.Connection]:
    """An aiosqlite connection opened by :func:`open_checked`, closed on exit.

    :raises StoreError: no store at ``path``.
    :raises StoreFormatError: the file is not an asyncflow store, or is from a newer one.
    """
    conn = await _aopen(path, set() if checked is None else checked)
    try:
        yield conn
    except BaseException:
        # Left by an exception: cancelled, or an async generator holding the connection
        # closed by its finalizer (a dropped ``aevents`` iterator, as asyncio.run shuts
        # down), where awaiting anything more fails. The connection's thread closes it.
        _stop(conn)
        raise
    with anyio.CancelScope(shield=True):
        await conn.close()


class _Shared:
    """The async connection shared inside ``async with flow``, and who may use it."""

    __slots__ = ("conn", "lock", "loop", "users")

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn
        self.lock = anyio.Lock()
        self.loop = asyncio.get_running_loop()
        self.users = 1


class StoreHandle:
    """One store file as the client reads it.

    :param path: the store file; kept absolute, so a pickled object reads the same file
        wherever it is unpickled.
    :param trust: unpickle pickled values of any run read through this handle, provided
        their bytes are intact (``Flow(name, store, trust=True)``); pickles with the handle.
    """

    __slots__ = (
        "__weakref__",
        "_archive",
        "_checked",
        "_closer",
        "_conn",
        "_lock",
        "_shared",
        "key",
        "path",
        "trust",
    )

    def __init__(self, path: str, trust: bool = False) -> None:
        self.path = os.path.abspath(path)
        # Safe loading (see _client._trust): trust=True (Flow(..., trust=True)) unpickles
        # whatever is intact, signed or not; the key is this user's, resolved here.
        self.trust = trust
        self.key = TrustKey()
        self._conn: sqlite3.Connection | None = None
        self._closer: weakref.finalize[[], StoreHandle] | None = None
        self._lock = threading.Lock()
        self._shared: _Shared | None = None
        # Versions of the file checked as a run archive (empty for a store), and whether it
        # is one: every blob read from an archive is checked against its sha.
        self._checked: set[tuple[int, int, int, int]] = set()
        self._archive = False

    def __reduce__(self) -> tuple[type[StoreHandle], tuple[str, bool]]:
        return (StoreHandle, (self.path, self.trust))

    def __repr__(self) -> str:
        return f"StoreHandle({self.path!r})"

    # --- sync -----------------------------------------------------------------------------
    def run(self, plan: Plan[T]) -> T:
        """Run ``plan`` on this handle's sync connection (opened on first use). Blocking.

        :raises StoreError: the file is missing or unreadable.
        :raises StoreFormatError: the file is not an asyncflow store, or is from a newer one.
        """
        with self._lock:
            if self._conn is None:
                conn = open_checked(self.path, self._checked)
                self._archive = self._checked != set()
                # Closes the connection when the handle is collected, without a warning.
                self._closer = weakref.finalize(self, conn.close)
                self._conn = conn
            result = drive(self._conn, plan, self.path)
        check_blobs(result, self.path, archive=self._archive)
        return result

    def close(self) -> None:
        """Close the sync connection, if open; the next read opens a new one."""
        with self._lock:
            if self._closer is not None:
                self._closer()
            self._conn = None
            self._closer = None

    # --- async ----------------------------------------------------------------------------
    async def arun(self, plan: Plan[T]) -> T:
        """Run ``plan`` without blocking the event loop; the twin of :meth:`run`.

        Uses the shared connection when it is open and idle, else a connection of its own.

        :raises StoreError: the file is missing or unreadable.
        :raises StoreFormatError: the file is not an asyncflow store, or is from a newer one.
        """
        shared = self._shared
        if shared is not None and shared.loop is asyncio.get_running_loop():
            try:
                shared.lock.acquire_nowait()
            except anyio.WouldBlock:
                pass
            else:
                try:
                    result = await adrive(shared.conn, plan, self.path)
                finally:
                    shared.lock.release()
                return await self._acheck(result)
        async with aconnect(self.path, self._checked) as conn:
            result = await adrive(conn, plan, self.path)
        return await self._acheck(result)

    async def _acheck(self, result: T) -> T:
        self._archive = self._checked != set()
        if not result or not isinstance(result, RawBlob | dict):
            return result
        blobs = result.values() if isinstance(result, dict) else [result]
        hashed = sum(raw.size for raw in blobs if isinstance(raw, RawBlob))
        if self._archive or hashed > _HASH_ON_LOOP_BYTES:
            await anyio.to_thread.run_sync(
                lambda: check_blobs(result, self.path, archive=self._archive)
            )
        else:
            check_blobs(result, self.path, archive=False)  # a few KiB: on the loop is fine
        return result

    async def aenter(self) -> None:
        """Open (or join) the async connection shared by this handle's readers."""
        if self._shared is not None:
            self._shared.users += 1
            return
        self._shared = _Shared(await _aopen(self.path, self._checked))

    async def aexit(self) -> None:
        """Leave the shared async connection; the last user closes it."""
        shared = self._shared
        if shared is None:
            return
        shared.users -= 1
        if shared.users == 0:
            self._shared = None
            with anyio.CancelScope(shield=True):
                await shared.conn.close()


class Closing:
    """``close()`` and ``with obj:`` for a client object (a run, step, task or artifact):
    they close the store connection its sync reads share. An object opened by its pathspec
    (``Run("Flow/12")``) has a connection of its own; one reached through a flow shares the
    flow's. Later reads reopen it. Without either, it closes when the object is collected."""

    __slots__ = ()

    @classmethod
    async def aopen(cls, pathspec: str, store: StorePath = None, *, trust: bool = False) -> Self:
        """The awaitable twin of opening the object by its pathspec (``Run(pathspec, store,
        trust=trust)``, and so on for ``Step``, ``Task`` and ``DataArtifact``)."""
        from ._pathspec import aopen_path  # that module imports the client classes

        found = await aopen_path(cls.__name__, pathspec, store, trust)  # type: ignore[arg-type]
        assert isinstance(found, cls)
        return found

    def _store_handle(self) -> StoreHandle:
        raise NotImplementedError

    def close(self) -> None:
        """Close the store connection this object's sync reads share (with the flow, run or
        task it was reached through); a later read opens it again."""
        self._store_handle().close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
