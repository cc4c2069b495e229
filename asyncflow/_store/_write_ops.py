"""What the writer writes: its operations and the SQL that applies each in a transaction.

A run's life in the store is four kinds of operation, each a dataclass with ``apply(conn)``:
:class:`CreateRun` (the run row, its tags, parameters and source), :class:`TaskRecord` (a
finished task, its attempts, artifacts, cards and the blobs it created), :class:`AppendEvents`
(events that came with no task commit) and :class:`FinishRun` (the final status).
:func:`apply_tasks` writes many task records at once with multi-row INSERTs. A task record
and the run's end carry the events published with them (``events``: items of ``_events``),
so an event is committed in the same transaction as what it reports; the writer gathers the
events of a whole batch and writes one ``events`` row per run (:func:`insert_events`).
Only the writer thread (``_writer``) applies them, inside its ``BEGIN IMMEDIATE`` batch.
"""

from __future__ import annotations

import functools
import itertools
import os
import sqlite3
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from .._codecs import Encoded
from ._blobs import INLINE_LIMIT, insert_blob, insert_new_blob, settle_blobs
from ._events import Item, encode_chunks
from ._lease import host_name
from ._runids import insert_run
from ._signing import PICKLE, sign_stored
from ._trust import TrustKey

__all__ = [
    "AppendEvents",
    "AttemptRow",
    "CardRow",
    "CreateRun",
    "FinishRun",
    "Op",
    "TaskRecord",
    "apply_tasks",
    "insert_events",
]


@dataclass(slots=True)
class CreateRun:
    """Insert a run row, its tags, parameters and source; the Future receives the new run id.

    The row takes this process's lease (``owner_pid``, ``owner_host``, ``heartbeat_at``),
    which the writer refreshes until the run finishes (see ``_lease``).
    """

    flow: str
    graph_json: str
    created_at: float
    tags: tuple[str, ...]
    params: dict[str, Encoded]
    origin_run_id: int | None = None
    future: Future[int] = field(default_factory=Future)
    # Parameters whose value is already stored (a resumed run reuses its origin's): name -> sha.
    param_refs: dict[str, bytes] = field(default_factory=dict)
    # The flow's source code ({"path", "text"}, see _runtime._source), or None if unreadable.
    source: Encoded | None = None
    # The run's identity across stores (kept by export and import); the runtime reads it here
    # for the Run that run() returns.
    uid: str = field(default_factory=lambda: uuid.uuid4().hex)
    # False for a run resumed from a run that is not trusted: it holds values you did not make.
    trusted: bool = True

    def apply(self, conn: sqlite3.Connection) -> None:
        if self.origin_run_id is not None:
            # param_refs and the clones name the origin's blobs without storing them: gc
            # keeps them only while the origin's row exists (see _gc).
            from ._gc import require_origin  # only a resume: a run need not import gc

            require_origin(conn, self.flow, self.origin_run_id)
        if self.source is not None:
            insert_blob(conn, self.source)
        # The id is claimed clean: rows planted in the file for it are deleted first.
        run_id = insert_run(
            conn,
            "INSERT INTO main.runs (flow, status, created_at, origin_run_id, graph, "
            "owner_pid, owner_host, heartbeat_at, uid, trusted, source_sha) "
            "VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                self.flow,
                self.created_at,
                self.origin_run_id,
                self.graph_json,
                os.getpid(),
                host_name(),
                time.time(),
                self.uid,
                int(self.trusted),
                None if self.source is None else self.source.sha,
            ),
        )
        conn.executemany(
            "INSERT OR IGNORE INTO run_tags (run_id, tag) VALUES (?, ?)",
            [(run_id, t) for t in self.tags],
        )
        for enc in self.params.values():
            insert_blob(conn, enc)
        conn.executemany(
            "INSERT INTO run_params (run_id, name, sha) VALUES (?, ?, ?)",
            [(run_id, name, enc.sha) for name, enc in self.params.items()]
            + [(run_id, name, sha) for name, sha in self.param_refs.items()],
        )
        self._result = run_id

    _result: int = 0


@dataclass(frozen=True, slots=True)
class AttemptRow:
    """An earlier, failed attempt of a task (the final attempt is the task row itself)."""

    attempt: int
    status: str
    started_at: float
    finished_at: float
    stdout: str | None
    stderr: str | None
    exception: str | None
    traceback: str | None


CardRow = tuple[int, str | None, str, bytes]
"""One card of a task: (its index among the step's ``@card``, id, type, sha of its blob)."""


@dataclass(slots=True)
class TaskRecord:
    """A finished task: its row, its complete artifact mapping, its cards and the blobs it
    created (a card's blob among them, so a card is committed whole with its task)."""

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
    attempt: int = 0
    earlier: list[AttemptRow] = field(default_factory=list)
    origin_task_id: int | None = None
    future: Future[int] | None = None
    _result: int = 0
    # The events published with this commit (its TaskFinished, and any before it).
    events: list[Item] = field(default_factory=list)
    cards: list[CardRow] = field(default_factory=list)

    def apply(self, conn: sqlite3.Connection) -> None:
        apply_tasks(conn, [self])


@dataclass(slots=True)
class AppendEvents:
    """Events of a run published with no task commit (a task started, a line printed)."""

    run_id: int
    events: list[Item]
    future: Future[int] | None = None
    _result: int = 0

    def apply(self, conn: sqlite3.Connection) -> None:
        insert_events(conn, {self.run_id: self.events})


def insert_events(conn: sqlite3.Connection, by_run: dict[int, list[Item]]) -> None:
    """Write each run's events (in seq order) as ``events`` rows: one per run, in practice."""
    rows = [
        (run_id, seq, data)
        for run_id, items in by_run.items()
        if items
        for seq, data in encode_chunks(items)
    ]
    if rows:
        conn.executemany("INSERT INTO events (run_id, seq, data) VALUES (?, ?, ?)", rows)


@dataclass(slots=True)
class FinishRun:
    """Set a run's final status and end its lease; optionally checkpoint the WAL."""

    run_id: int
    status: str
    finished_at: float
    error: str | None = None
    checkpoint: bool = True
    future: Future[int] = field(default_factory=Future)
    _result: int = 0
    events: list[Item] = field(default_factory=list)  # the run's RunFinished

    def apply(self, conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE runs SET status = ?, finished_at = ?, error = ?, heartbeat_at = ? WHERE id = ?",
            (self.status, self.finished_at, self.error, self.finished_at, self.run_id),
        )


def apply_tasks(
    conn: sqlite3.Connection, records: list[TaskRecord], key: TrustKey | None = None
) -> None:
    encs = [enc for rec in records for enc in rec.blobs]
    # A row already stored under one of these shas is kept only if its bytes check out.
    fresh = settle_blobs(conn, encs)
    small: list[tuple[Any, ...]] = []
    for enc in fresh:
        if enc.size <= INLINE_LIMIT:
            small.append((enc.sha, enc.encoding, enc.meta, enc.size, enc.payload))
        else:
            insert_new_blob(conn, enc)
    if small:
        _insert_rows(conn, _INLINE_HEAD, "(?, ?, ?, ?, ?, 0)", small)
    if key is not None:
        # Signed: only what this user wrote may be unpickled.
        pickles = dict.fromkeys(enc.sha for enc in encs if enc.encoding == PICKLE)
        if pickles:
            sign_stored(conn, pickles, key)
    _insert_rows(
        conn,
        _TASKS_HEAD,
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                r.attempt,
                r.origin_task_id,
            )
            for r in records
        ],
    )
    _insert_rows(
        conn,
        _ATTEMPTS_HEAD,
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(r.run_id, r.task_id, *_astuple_row(a)) for r in records for a in r.earlier],
    )
    _insert_rows(
        conn,
        _ARTIFACTS_HEAD,
        "(?, ?, ?, ?)",
        [(r.run_id, r.task_id, name, sha) for r in records for name, sha in r.refs.items()],
    )
    _insert_rows(
        conn,
        _CARDS_HEAD,
        "(?, ?, ?, ?, ?, ?)",
        [(r.run_id, r.task_id, *card) for r in records for card in r.cards],
    )


def _astuple_row(a: AttemptRow) -> tuple[Any, ...]:
    """The attempts-table columns of ``a`` after (run_id, task_id)."""
    return (
        a.attempt,
        a.status,
        a.started_at,
        a.finished_at,
        a.stdout,
        a.stderr,
        a.exception,
        a.traceback,
    )


_INLINE_HEAD = "INSERT INTO blobs (sha, encoding, meta, size, data, nchunks) VALUES "
_TASKS_HEAD = (
    "INSERT INTO tasks (run_id, id, step, path, status, started_at, finished_at, "
    "stdout, stderr, exception, traceback, attempt, origin_task_id) VALUES "
)
_ATTEMPTS_HEAD = (
    "INSERT INTO attempts (run_id, task_id, attempt, status, started_at, finished_at, "
    "stdout, stderr, exception, traceback) VALUES "
)
_ARTIFACTS_HEAD = "INSERT INTO artifacts (run_id, task_id, name, sha) VALUES "
_CARDS_HEAD = "INSERT INTO cards (run_id, task_id, idx, card_id, type, sha) VALUES "
# Rows per INSERT statement at most (a power of two; fewer if SQLite allows fewer variables).
_MAX_ROWS = 256


@functools.lru_cache(maxsize=64)
def _values_sql(head: str, row: str, nrows: int) -> str:
    return head + ", ".join([row] * nrows)


def _insert_rows(
    conn: sqlite3.Connection, head: str, row: str, rows: list[tuple[Any, ...]]
) -> None:
    """Insert ``rows`` with multi-row INSERTs rather than executemany.

    executemany steps each row separately and releases and retakes the GIL around every
    step, so a writer inserting thousands of small rows keeps waiting for the GIL while
    plain-step threads hold it; a statement of up to 256 rows makes one step (and one GIL
    hand-off) of them and binds faster (benchmarks/RESULTS.md). Statement sizes are powers of
    two, so the few distinct statements stay in the connection's statement cache.
    """
    if not rows:
        return
    limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // row.count("?")
    most = _MAX_ROWS
    while most > max(1, limit):
        most //= 2
    pos, total = 0, len(rows)
    while pos < total:
        count = min(most, 1 << ((total - pos).bit_length() - 1))
        part = rows[pos : pos + count]
        conn.execute(_values_sql(head, row, count), list(itertools.chain.from_iterable(part)))
        pos += count


Op = CreateRun | TaskRecord | AppendEvents | FinishRun
