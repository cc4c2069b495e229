"""The single writer of a store file in this process: one thread, group commit.

Tasks hand their commits to :meth:`Writer.submit` from any thread without waiting. The
writer thread takes everything queued, applies it in one ``BEGIN IMMEDIATE`` transaction
and commits, so a burst of small task commits shares one transaction (and one fsync of
the WAL). If a batch fails, its operations are retried one by one so that only the bad
one fails. Operations that need an answer (a new run id) carry a Future; the operations
themselves, and the SQL each applies, are in ``_write_ops``.
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future

from .._codecs import Encoded
from .._errors import StoreError
from ._db import BUSY_TIMEOUT_MS, open_writer, write_transaction
from ._events import Item, refinished
from ._format import check_format
from ._lease import lease_seconds
from ._signing import PICKLE, sign_stored
from ._sqlerrors import retry_busy, store_error
from ._trust import TrustKey
from ._write_ops import (
    AppendEvents,
    CreateRun,
    FinishRun,
    Op,
    TaskRecord,
    apply_tasks,
    insert_events,
)

__all__ = ["Writer"]

MAX_BATCH = 4096
# Operations queued over which a thread running plain tasks waits for the writer (down to
# MAX_BATCH queued) before it starts another: without it, 16 such threads outran the writer
# by ~20,000 task records in a 100,000-wide foreach (~1 KB each, and the holes they left).
BACKLOG_HIGH = 2 * MAX_BATCH
_HEADER_SQL = (
    "SELECT (SELECT application_id FROM pragma_application_id()),"
    " (SELECT user_version FROM pragma_user_version()),"
    " (SELECT schema_version FROM pragma_schema_version())"
)


def _beat(conn: sqlite3.Connection, run_ids: list[int]) -> None:
    # Refresh the lease of runs this process owns; a finished run's row is left alone.
    for start in range(0, len(run_ids), 500):
        part = run_ids[start : start + 500]
        conn.execute(
            "UPDATE runs SET heartbeat_at = ? WHERE status = 'running' "
            f"AND id IN ({','.join('?' * len(part))})",
            (time.time(), *part),
        )


def _pickles(encs: Iterable[Encoded]) -> list[bytes]:
    return [enc.sha for enc in encs if enc.encoding == PICKLE]


class _Flush:
    __slots__ = ("future",)

    def __init__(self) -> None:
        self.future: Future[int] = Future()


class _Stop:
    __slots__ = ()


class Writer:
    """Owns the store's write connection and the thread that uses it.

    :param path: the store file (created if missing).
    :param on_committed: called in the writer thread with the shas of blobs just committed.
    :param key: signs every pickle blob written (see ``_signing``); None: this user's key
        (``$ASYNCFLOW_KEY_FILE`` or the default path, resolved now).
    :param heartbeat_seconds: how often the lease of the runs it owns is refreshed; None:
        ``_lease.lease_seconds()``.
    """

    def __init__(
        self,
        path: str,
        on_committed: Callable[[list[bytes]], None],
        on_idle: Callable[[], bool] = lambda: False,
        idle_seconds: float = 2.0,
        key: TrustKey | None = None,
        heartbeat_seconds: float | None = None,
    ) -> None:
        self._path = path
        self._key = TrustKey() if key is None else key
        self._on_idle = on_idle
        self._idle_seconds = idle_seconds
        self._heartbeat = lease_seconds()[0] if heartbeat_seconds is None else heartbeat_seconds
        self._conn = open_writer(path)
        self._queue: queue.SimpleQueue[Op | _Flush | _Stop] = queue.SimpleQueue()
        self._drained = threading.Condition()  # notified after each batch (wait_backlog)
        self._on_committed = on_committed
        self.error: StoreError | None = None
        # Runs that lost a write, and why: they must not end up looking complete.
        self._run_errors: dict[int, StoreError] = {}
        # Runs created by this writer and not finished yet: their heartbeat is ours to keep.
        self._owned: set[int] = set()
        self._beat_due = time.monotonic() + self._heartbeat
        self._checked: tuple[int, int, int] | None = None  # the header check_format passed
        self._thread = threading.Thread(
            target=self._loop, name=f"asyncflow-writer:{path}", daemon=True
        )
        self._thread.start()

    def submit(self, op: Op) -> None:
        """Queue ``op``; it is committed with the next batch. Never blocks."""
        self._queue.put(op)

    def flush(self) -> Future[int]:
        """A Future that completes once everything submitted before it is committed."""
        marker = _Flush()
        self._queue.put(marker)
        return marker.future

    def wait_backlog(self, stop: Callable[[], bool]) -> None:
        """In a thread that makes work for the writer (never the event loop): if more than
        ``BACKLOG_HIGH`` operations are queued, wait until at most ``MAX_BATCH`` are, the
        writer thread ends, or ``stop()`` is true (checked every 50 ms)."""
        q = self._queue
        if q.qsize() <= BACKLOG_HIGH:
            return
        with self._drained:
            while q.qsize() > MAX_BATCH and self._thread.is_alive() and not stop():
                self._drained.wait(0.05)

    @property
    def alive(self) -> bool:
        """False once the writer thread has ended."""
        return self._thread.is_alive()

    def close(self, timeout: float | None = None) -> None:
        """Commit what is queued, empty the WAL into the file, stop the thread, close the
        file (the last connection to close removes the ``-wal`` and ``-shm`` files).

        :param timeout: give up waiting for the thread after this many seconds (at exit).
        """
        self._queue.put(_Stop())
        self._thread.join(timeout)

    # --- the writer thread -----------------------------------------------------------
    def _loop(self) -> None:
        stop = False
        # Wake often enough to beat in time while nothing is written; close after a quiet
        # spell of idle_seconds.
        wake = min(self._idle_seconds, self._heartbeat)
        quiet_since = time.monotonic()
        while not stop:
            try:
                first = self._queue.get(timeout=wake)
            except queue.Empty:
                self._idle_beat()
                # Nobody wrote for a while: close if no run uses the store any more.
                if time.monotonic() - quiet_since >= self._idle_seconds and self._on_idle():
                    break
                continue
            items: list[Op | _Flush | _Stop] = [first]
            while len(items) < MAX_BATCH:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            ops = [i for i in items if not isinstance(i, _Flush | _Stop)]
            if ops:
                self._commit(ops)
            for item in items:
                if isinstance(item, _Flush):
                    item.future.set_result(0)
                elif isinstance(item, _Stop):
                    stop = True
            finished = [op for op in ops if isinstance(op, FinishRun)]
            if any(op.checkpoint for op in finished):
                self._checkpoint()
            for op in finished:
                self._owned.discard(op.run_id)
                # Resolved only now, so a returned run is in the main file, not just the WAL.
                if not op.future.done():
                    op.future.set_result(0)
            # Drop this batch before waiting for the next: its records hold their values'
            # encoded bytes, which would stay in memory for as long as the store is quiet.
            first = items = ops = finished = None  # type: ignore[assignment]
            with self._drained:
                self._drained.notify_all()
            quiet_since = time.monotonic()
        self._checkpoint()
        self._conn.close()

    def _checkpoint(self) -> bool:
        """Copy the WAL into the main file and truncate it to zero bytes; True if done.

        At the end of every run, so that the file alone holds every finished run and the
        ``-wal`` takes no disk space (a PASSIVE checkpoint left it at the size of the
        largest transaction: a 100 MiB run took 200 MiB). The truncate-and-sync costs a few
        milliseconds per run (benchmarks/RESULTS.md, "Disk"). A reader in the middle of a
        read transaction blocks the truncation, and a truncating checkpoint that waits for
        it holds the write lock meanwhile (every writer of the file would wait on a reader):
        so it never waits. If a reader is in the way, the frames it does not need are copied
        (PASSIVE) and the truncation is left to the next checkpoint (the next run's end, or
        the close of the last connection, which removes the file).
        """
        conn = self._conn
        try:
            conn.execute("PRAGMA busy_timeout = 0")
            try:
                if not conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]:
                    return True
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        except sqlite3.Error:
            pass
        return False

    def _beat_ids(self) -> list[int]:
        # The owned runs whose heartbeat is due now (riding along with a batch), else [].
        if not self._owned or time.monotonic() < self._beat_due:
            return []
        return sorted(self._owned)

    def _beat_done(self) -> None:
        self._beat_due = time.monotonic() + self._heartbeat

    def _idle_beat(self) -> None:
        """Refresh the owned runs' heartbeat in a tiny transaction of its own, if due."""
        beat = self._beat_ids()
        if not beat:
            return
        conn = self._conn
        # A missed heartbeat is only retried at the next wake: readers allow for many.
        with contextlib.suppress(Exception):
            retry_busy(lambda: write_transaction(conn, lambda: _beat(conn, beat)), self._path)
            self._beat_done()

    def _transaction(self, ops: list[Op]) -> None:
        conn = self._conn
        beat = self._beat_ids()

        def body() -> None:
            # Another process may have upgraded the file since we opened it; a
            # header read per batch keeps us from writing into a newer schema.
            self._check_format(conn)
            tasks = [op for op in ops if isinstance(op, TaskRecord)]
            # The batch's events, one list per run (FIFO order is seq order): one row each.
            events: dict[int, list[Item]] = {}
            for op in ops:
                if not isinstance(op, CreateRun) and op.events:
                    events.setdefault(op.run_id, []).extend(op.events)
                if not isinstance(op, TaskRecord | AppendEvents):
                    op.apply(conn)
                    if isinstance(op, CreateRun):
                        # apply() has just written or checked these rows (insert_blob).
                        sign_stored(conn, _pickles(op.params.values()), self._key)
            if tasks:
                apply_tasks(conn, tasks, self._key)
            if events:
                insert_events(conn, events)
            if beat:
                _beat(conn, beat)

        retry_busy(lambda: write_transaction(conn, body), self._path)
        if beat:
            self._beat_done()

    def _check_format(self, conn: sqlite3.Connection) -> None:
        # In the batch's transaction: check_format, unless the file's header (application
        # id, user_version) and its schema cookie (which SQLite bumps on every change of a
        # table, index, trigger or view, by any connection) are as when it last passed. The
        # full check reads and normalises every object's SQL (15-30 us a batch).
        header = conn.execute(_HEADER_SQL).fetchone()
        if header != self._checked:
            check_format(conn, self._path, allow_empty=False)
            self._checked = header

    def run_error(self, run_id: int) -> StoreError | None:
        """Why a write of run ``run_id`` failed, or None while all of them succeeded."""
        return self._run_errors.get(run_id)

    def forget_run(self, run_id: int) -> StoreError | None:
        """Drop (and return) what :meth:`run_error` knows of a run that has ended."""
        return self._run_errors.pop(run_id, None)

    def _screen(self, ops: list[Op]) -> list[Op]:
        """Keep a run that lost a write from looking complete in the store.

        Its later task records are dropped (they may name values that were never stored),
        and its final status becomes failed, with the store problem as the reason.
        """
        if not self._run_errors:
            return ops
        kept: list[Op] = []
        for op in ops:
            err = None if isinstance(op, CreateRun) else self._run_errors.get(op.run_id)
            if err is None:
                kept.append(op)
            elif isinstance(op, FinishRun):
                if op.status != "cancelled":
                    op.status = "failed"
                op.error = f"the store could not save all of this run: {err}"
                op.events = refinished(op.events, op.status, op.error)
                kept.append(op)
            elif op.future is not None and not op.future.done():
                op.future.set_exception(err)
        return kept

    def _commit(self, ops: list[Op]) -> None:
        ops = self._screen(ops)
        if not ops:
            return
        try:
            self._transaction(ops)
        except Exception as exc:
            if len(ops) > 1:
                # Isolate the operation at fault; the others still commit.
                for op in ops:
                    self._commit([op])
            else:
                self._record_failure(ops[0], exc)
            return
        shas = [enc.sha for op in ops if isinstance(op, TaskRecord) for enc in op.blobs]
        for op in ops:
            if isinstance(op, CreateRun):
                shas.extend(enc.sha for enc in op.params.values())
                self._owned.add(op._result)
        if shas:
            self._on_committed(shas)
        for op in ops:
            if op.future is not None and not isinstance(op, FinishRun) and not op.future.done():
                op.future.set_result(op._result)

    def _record_failure(self, op: Op, exc: Exception) -> None:
        err: StoreError
        if isinstance(exc, StoreError):
            err = exc
        elif isinstance(exc, sqlite3.Error):
            err = store_error(exc, self._path, "write to")
        else:
            err = StoreError(
                f"could not write to the store file {self._path!r}: {exc}; check free disk "
                "space and permissions, then resume the run.",
                self._path,
            )
        if self.error is None:
            self.error = err
        if not isinstance(op, CreateRun):
            self._run_errors.setdefault(op.run_id, err)
        if op.future is not None and not op.future.done():
            op.future.set_exception(err)
