"""The single writer of a store file in this process: one thread, group commit.

Tasks hand their commits to :meth:`Writer.submit` from any thread without waiting. The
writer thread takes everything queued, applies it in one ``BEGIN IMMEDIATE`` transaction
and commits, so a burst of small task commits shares one transaction (and one fsync of
the WAL). If a batch fails, its operations are retried one by one so that only the bad
one fails. Operations that need an answer (a new run id) carry a Future.
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from .._codecs import Encoded
from .._errors import StoreError
from ._blobs import INLINE_LIMIT, INSERT_INLINE, insert_blob
from ._db import open_writer, retry_busy

__all__ = ["CreateRun", "FinishRun", "TaskRecord", "Writer"]

MAX_BATCH = 4096


@dataclass(slots=True)
class CreateRun:
    """Insert a run row, its tags and parameters; the Future receives the new run id."""

    flow: str
    graph_json: str
    created_at: float
    tags: tuple[str, ...]
    params: dict[str, Encoded]
    origin_run_id: int | None = None
    future: Future[int] = field(default_factory=Future)

    def apply(self, conn: sqlite3.Connection) -> None:
        cur = conn.execute(
            "INSERT INTO runs (flow, status, created_at, origin_run_id, graph) "
            "VALUES (?, 'running', ?, ?, ?)",
            (self.flow, self.created_at, self.origin_run_id, self.graph_json),
        )
        run_id = cur.lastrowid
        assert run_id is not None
        conn.executemany(
            "INSERT OR IGNORE INTO run_tags (run_id, tag) VALUES (?, ?)",
            [(run_id, t) for t in self.tags],
        )
        for enc in self.params.values():
            insert_blob(conn, enc)
        conn.executemany(
            "INSERT INTO run_params (run_id, name, sha) VALUES (?, ?, ?)",
            [(run_id, name, enc.sha) for name, enc in self.params.items()],
        )
        self._result = run_id

    _result: int = 0


@dataclass(slots=True)
class TaskRecord:
    """A finished task: its row, its complete artifact mapping and the blobs it created."""

    run_id: int
    task_id: int
    step: str
    path: str
    status: str
    started_at: float
    finished_at: float
    refs: dict[str, bytes]
    blobs: list[Encoded]
    stdout: str | None = None
    stderr: str | None = None
    exception: str | None = None
    traceback: str | None = None
    future: Future[int] | None = None
    _result: int = 0

    def apply(self, conn: sqlite3.Connection) -> None:
        _apply_tasks(conn, [self])


@dataclass(slots=True)
class FinishRun:
    """Set a run's final status; optionally checkpoint the WAL into the main file."""

    run_id: int
    status: str
    finished_at: float
    error: str | None = None
    checkpoint: bool = True
    future: Future[int] = field(default_factory=Future)
    _result: int = 0

    def apply(self, conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE runs SET status = ?, finished_at = ?, error = ? WHERE id = ?",
            (self.status, self.finished_at, self.error, self.run_id),
        )


def _apply_tasks(conn: sqlite3.Connection, records: list[TaskRecord]) -> None:
    small: list[tuple[Any, ...]] = []
    for rec in records:
        for enc in rec.blobs:
            if enc.size <= INLINE_LIMIT:
                small.append((enc.sha, enc.encoding, enc.meta, enc.size, enc.payload))
            else:
                insert_blob(conn, enc)
    if small:
        conn.executemany(INSERT_INLINE, small)
    conn.executemany(
        "INSERT INTO tasks (run_id, id, step, path, status, started_at, finished_at, "
        "stdout, stderr, exception, traceback) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                r.run_id,
                r.task_id,
                r.step,
                r.path,
                r.status,
                r.started_at,
                r.finished_at,
                r.stdout,
                r.stderr,
                r.exception,
                r.traceback,
            )
            for r in records
        ],
    )
    conn.executemany(
        "INSERT INTO artifacts (run_id, task_id, name, sha) VALUES (?, ?, ?, ?)",
        [(r.run_id, r.task_id, name, sha) for r in records for name, sha in r.refs.items()],
    )


Op = CreateRun | TaskRecord | FinishRun


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
    """

    def __init__(
        self,
        path: str,
        on_committed: Callable[[list[bytes]], None],
        on_idle: Callable[[], bool] = lambda: False,
        idle_seconds: float = 2.0,
    ) -> None:
        self._path = path
        self._on_idle = on_idle
        self._idle_seconds = idle_seconds
        self._conn = open_writer(path)
        self._queue: queue.SimpleQueue[Op | _Flush | _Stop] = queue.SimpleQueue()
        self._on_committed = on_committed
        self.error: StoreError | None = None
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

    @property
    def alive(self) -> bool:
        """False once the writer thread has ended."""
        return self._thread.is_alive()

    def close(self) -> None:
        """Commit what is queued, checkpoint the WAL, stop the thread, close the file."""
        self._queue.put(_Stop())
        self._thread.join()

    # --- the writer thread -----------------------------------------------------------
    def _loop(self) -> None:
        stop = False
        while not stop:
            try:
                first = self._queue.get(timeout=self._idle_seconds)
            except queue.Empty:
                # Nobody wrote for a while: close if no run uses the store any more.
                if self._on_idle():
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
                # Resolved only now, so a returned run is in the main file, not just the WAL.
                if not op.future.done():
                    op.future.set_result(0)
        self._checkpoint()
        self._conn.close()

    def _checkpoint(self) -> None:
        # Fails only while another connection reads; the next checkpoint completes it.
        with contextlib.suppress(sqlite3.Error):
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _transaction(self, ops: list[Op]) -> None:
        conn = self._conn

        def run() -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                tasks = [op for op in ops if isinstance(op, TaskRecord)]
                for op in ops:
                    if not isinstance(op, TaskRecord):
                        op.apply(conn)
                if tasks:
                    _apply_tasks(conn, tasks)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        retry_busy(run, self._path)

    def _commit(self, ops: list[Op]) -> None:
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
        if shas:
            self._on_committed(shas)
        for op in ops:
            if op.future is not None and not isinstance(op, FinishRun) and not op.future.done():
                op.future.set_result(op._result)

    def _record_failure(self, op: Op, exc: Exception) -> None:
        err = (
            exc
            if isinstance(exc, StoreError)
            else StoreError(
                f"could not write to the store file {self._path!r}: {exc}; check free disk "
                "space and permissions, then resume the run.",
                self._path,
            )
        )
        if self.error is None:
            self.error = err
        if op.future is not None and not op.future.done():
            op.future.set_exception(err)
