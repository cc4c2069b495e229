"""Garbage collection, the SQL: which runs gc deletes, deleting them and their blobs.

Garbage collection deletes runs and then every blob that no remaining row references, all
in one ``BEGIN IMMEDIATE`` transaction. The writer of another process inserts each blob in
the same transaction as the rows that reference it (``INSERT OR IGNORE``), so it either
commits before gc (gc sees its references and keeps the blobs) or after (it re-inserts
what gc removed). A live run, and the run a live run resumed (whose artifacts its clones
reference), are never deleted. Space is then handed back to the file system:
``incremental_vacuum`` for stores created with ``auto_vacuum = INCREMENTAL``, ``VACUUM``
(which also switches the store to that mode) for older ones, then a truncating checkpoint.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass

from .._errors import StoreError
from ._db import open_writer, write_transaction
from ._lease import lease_held
from ._plans import record_error
from ._records import row_problem
from ._runids import DELETED_KEY, parse_deleted
from ._schema import run_tables
from ._sqlerrors import is_busy, retry_busy, store_error
from ._tidy import file_bytes

__all__ = [
    "DELETED_KEY",
    "GcCriteria",
    "GcOutcome",
    "RunRef",
    "Skipped",
    "collect_garbage",
    "parse_deleted",
    "require_origin",
]

# Every column that references a blob by its sha. A blob none of them names is garbage.
# (Add a column here when the schema gains one.)
_KEPT_SHAS = (
    "SELECT sha FROM artifacts WHERE run_id NOT IN (SELECT id FROM temp.af_gc_runs) "
    "UNION ALL SELECT sha FROM cards WHERE run_id NOT IN (SELECT id FROM temp.af_gc_runs) "
    "UNION ALL SELECT sha FROM run_params WHERE run_id NOT IN (SELECT id FROM temp.af_gc_runs) "
    "UNION ALL SELECT source_sha FROM runs WHERE source_sha IS NOT NULL "
    "AND id NOT IN (SELECT id FROM temp.af_gc_runs)"
)
# The tables holding rows of a run, by their run id column (every table with a run_id
# column, as a new run claims its id: _runids); ``runs`` itself last.
_RUN_TABLES = (*((table, "run_id") for table in run_tables()), ("runs", "id"))
_AUTO_VACUUM_NONE = 0
_AUTO_VACUUM_INCREMENTAL = 2
# How long gc's truncating checkpoint waits for other connections' reads to end.
_CHECKPOINT_WAIT_MS = 1000


def require_origin(conn: sqlite3.Connection, flow: str, origin_run_id: int) -> None:
    """Refuse to record a resumed run whose origin is gone (inside the writer's transaction).

    A resume reads its origin first and records the new run later; gc may delete the
    origin in between. Once the new run's row is committed, gc keeps the origin while the
    run lives.

    :raises StoreError: the origin run is no longer in the store.
    """
    found = conn.execute("SELECT 1 FROM runs WHERE id = ?", (origin_run_id,)).fetchone()
    if found is None:
        path = str(conn.execute("PRAGMA database_list").fetchone()[2])
        raise StoreError(
            f"cannot resume run {flow}/{origin_run_id}: it was deleted from the store file "
            f"{path!r} (by asyncflow gc, say) while the resume was starting; resume another "
            "run, or run the flow afresh.",
            path,
        )


@dataclass(frozen=True, slots=True)
class RunRef:
    """A run by flow name and id."""

    flow: str
    id: int


@dataclass(frozen=True, slots=True)
class GcCriteria:
    """Which runs gc selects: every given criterion must hold (``None``: not a criterion).

    :param flow: only runs of this flow.
    :param keep_last: select all but each flow's ``keep_last`` newest runs (by id).
    :param created_before: select runs created before this time (seconds since the epoch).
    :param tag: select runs carrying this tag.
    :param protect: runs carrying any of these tags are never deleted, whatever the other
        criteria say (a selected one is reported as skipped, with the reason).
    """

    flow: str | None = None
    keep_last: int | None = None
    created_before: float | None = None
    tag: str | None = None
    protect: tuple[str, ...] = ("keep",)


@dataclass(frozen=True, slots=True)
class Skipped:
    """A run the criteria selected that gc kept, and why (one line, for people)."""

    run: RunRef
    reason: str


@dataclass(frozen=True, slots=True)
class GcOutcome:
    """What gc did (or, in a dry run, would do) to a store."""

    deleted: tuple[RunRef, ...]
    skipped: tuple[Skipped, ...]
    blobs: int
    blob_bytes: int
    size_before: int
    size_after: int
    note: str | None


@dataclass(frozen=True, slots=True)
class _RunInfo:
    id: int
    flow: str
    created_at: float
    origin_run_id: int | None
    # Why gc must not delete it while it runs (see _lease.lease_held), else None.
    live: str | None


_GC_COLUMNS = (
    "id", "flow", "status", "created_at", "origin_run_id", "owner_pid", "owner_host",
    "heartbeat_at",
)  # fmt: skip


def _runs(conn: sqlite3.Connection) -> list[_RunInfo]:
    rows = conn.execute(f"SELECT {', '.join(_GC_COLUMNS)} FROM runs ORDER BY id DESC").fetchall()
    for row in rows:
        problem = row_problem("runs", _GC_COLUMNS, row)
        if problem is not None:
            raise TypeError(problem)  # collect_garbage says: a record asyncflow never writes
    return [
        _RunInfo(
            id=int(r[0]),
            flow=str(r[1]),
            created_at=float(r[3]),
            origin_run_id=None if r[4] is None else int(r[4]),
            # Its process may still write rows that need its blobs.
            live=lease_held(r[2], r[5], r[6], r[7]),
        )
        for r in rows
    ]


def _tagged(conn: sqlite3.Connection, tags: Sequence[str]) -> dict[int, str]:
    """Run id -> the first (sorted) of ``tags`` the run carries, for runs carrying any."""
    found: dict[int, str] = {}
    for tag in sorted(set(tags)):
        for (run_id,) in conn.execute("SELECT run_id FROM run_tags WHERE tag = ?", (tag,)):
            found.setdefault(int(run_id), tag)
    return found


def _choose(
    runs: Sequence[_RunInfo],
    tagged: set[int],
    protected_tags: dict[int, str],
    criteria: GcCriteria,
) -> tuple[list[_RunInfo], list[tuple[_RunInfo, str]]]:
    """(runs to delete, selected runs kept, each with the reason).

    A selected run is kept if it carries a protected tag, is live, or is the origin of a
    live resumed run (whose clones reference its values).

    :param runs: every run of the store, newest first.
    :param tagged: the ids of the runs carrying ``criteria.tag``.
    :param protected_tags: run id -> the protected tag it carries.
    """
    kept: dict[int, str] = {r.id: f"live: {r.live}" for r in runs if r.live}
    for r in runs:
        if r.live and r.origin_run_id is not None:
            kept.setdefault(r.origin_run_id, f"the origin of the live resumed run {r.flow}/{r.id}")
    for run_id, tag in protected_tags.items():
        kept.setdefault(run_id, f"tagged {tag!r}, a protected tag")
    seen: dict[str, int] = {}
    delete: list[_RunInfo] = []
    skip: list[tuple[_RunInfo, str]] = []
    for run in runs:
        rank = seen.get(run.flow, 0)
        seen[run.flow] = rank + 1
        if criteria.flow is not None and run.flow != criteria.flow:
            continue
        if criteria.keep_last is not None and rank < criteria.keep_last:
            continue
        if criteria.created_before is not None and run.created_at >= criteria.created_before:
            continue
        if criteria.tag is not None and run.id not in tagged:
            continue
        why = kept.get(run.id)
        if why is None:
            delete.append(run)
        else:
            skip.append((run, why))
    return delete, skip


def _select(
    conn: sqlite3.Connection, criteria: GcCriteria
) -> tuple[list[_RunInfo], list[tuple[_RunInfo, str]], int, int]:
    """Choose the runs, then the blobs only they reference; nothing is deleted yet.

    Fills ``temp.af_gc_runs`` and ``temp.af_gc_blobs``; returns (runs to delete, runs
    skipped with the reason, number of blobs to delete, their payload bytes).
    """
    tagged: set[int] = set()
    if criteria.tag is not None:
        tagged = set(_tagged(conn, (criteria.tag,)))
    protected = _tagged(conn, criteria.protect)
    delete, skip = _choose(_runs(conn), tagged, protected, criteria)
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS af_gc_runs (id INTEGER PRIMARY KEY)")
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS af_gc_blobs (sha BLOB PRIMARY KEY)")
    conn.execute("DELETE FROM temp.af_gc_runs")
    conn.execute("DELETE FROM temp.af_gc_blobs")
    conn.executemany("INSERT INTO temp.af_gc_runs (id) VALUES (?)", [(r.id,) for r in delete])
    # Rows naming an id that no run has (planted in a file from elsewhere, see _runids): no
    # run can reach them, so they go too, and the values only they name with them.
    for table in run_tables():
        conn.execute(
            f"INSERT OR IGNORE INTO temp.af_gc_runs (id) SELECT DISTINCT run_id FROM {table} "
            "WHERE run_id NOT IN (SELECT id FROM runs)"
        )
    # Also blobs that no row referenced even before (an older asyncflow may have left some).
    conn.execute(
        f"INSERT INTO temp.af_gc_blobs (sha) SELECT sha FROM blobs WHERE sha NOT IN ({_KEPT_SHAS})"
    )
    count, size = conn.execute(
        "SELECT count(*), coalesce(sum(size), 0) FROM blobs "
        "WHERE sha IN (SELECT sha FROM temp.af_gc_blobs)"
    ).fetchone()
    return delete, skip, int(count), int(size)


def _delete(conn: sqlite3.Connection) -> None:
    # One small row per deleted run (the schema is unchanged: store_info takes any key).
    conn.execute(
        "INSERT OR REPLACE INTO store_info (key, value) "
        "SELECT ? || id, json_object('flow', flow, 'deleted_at', ?) FROM runs "
        "WHERE id IN (SELECT id FROM temp.af_gc_runs)",
        (DELETED_KEY, time.time()),
    )
    # Foreign keys are off (and not declared on every table): each table explicitly.
    for table, column in _RUN_TABLES:
        conn.execute(f"DELETE FROM {table} WHERE {column} IN (SELECT id FROM temp.af_gc_runs)")
    conn.execute("DELETE FROM blob_chunks WHERE sha IN (SELECT sha FROM temp.af_gc_blobs)")
    conn.execute("DELETE FROM blobs WHERE sha IN (SELECT sha FROM temp.af_gc_blobs)")


def _reclaim(conn: sqlite3.Connection, path: str) -> str | None:
    """Give the free pages back to the file system; a note if that had to wait."""
    note = None
    free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    mode = int(conn.execute("PRAGMA auto_vacuum").fetchone()[0])
    if free and mode == _AUTO_VACUUM_INCREMENTAL:
        # executescript steps the pragma to its end (one step frees a single page).
        retry_busy(lambda: conn.executescript("PRAGMA incremental_vacuum"), path)
    elif free and mode == _AUTO_VACUUM_NONE:
        try:
            # Rebuilding the file anyway: switch it to the mode that later gcs use.
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            conn.execute("VACUUM")
        except sqlite3.OperationalError as exc:
            code = getattr(exc, "sqlite_errorname", "")
            if not is_busy(exc) and code != "SQLITE_FULL":
                raise
            page = int(conn.execute("PRAGMA page_size").fetchone()[0])
            why = "another process kept the store busy"
            if code == "SQLITE_FULL":
                why = "the disk lacks room for a compacted copy"
            note = (
                f"the file was not compacted ({why}); its {free * page} free bytes will be "
                "reused by later runs, or run gc again to compact it"
            )
    # A truncating checkpoint waits for readers to move on; only briefly, as this is tidying.
    conn.execute(f"PRAGMA busy_timeout = {_CHECKPOINT_WAIT_MS}")
    busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    if busy and note is None:
        note = (
            "another connection was reading the store, so its write-ahead log was not emptied "
            "yet; the file shrinks at a later checkpoint"
        )
    return note


def collect_garbage(path: str, criteria: GcCriteria, *, dry_run: bool) -> GcOutcome:
    """Delete the runs ``criteria`` selects, every blob left unreferenced, and reclaim space.

    A dry run takes the same decisions in a read transaction and changes nothing.

    :raises StoreError: the store is missing, an archive, locked for too long, or damaged.
    """
    conn = open_writer(path, existing=True)
    try:
        size_before = file_bytes(path)
        found: list[tuple[list[_RunInfo], list[tuple[_RunInfo, str]], int, int]] = []

        def body() -> None:
            found.clear()
            found.append(_select(conn, criteria))
            if not dry_run:
                _delete(conn)

        def dry() -> None:
            # A read snapshot; the temp tables live outside the store file.
            conn.execute("BEGIN")
            try:
                body()
            finally:
                conn.execute("ROLLBACK")

        try:
            retry_busy(dry if dry_run else lambda: write_transaction(conn, body), path)
            delete, skip, blobs, blob_bytes = found[0]
            note = None
            if not dry_run and (delete or blobs or _has_free_pages(conn)):
                note = _reclaim(conn, path)
        except sqlite3.Error as exc:
            raise store_error(exc, path, "write to") from exc
        except (TypeError, ValueError) as exc:
            raise record_error(exc, path) from exc
    finally:
        conn.close()
    return GcOutcome(
        deleted=tuple(RunRef(r.flow, r.id) for r in reversed(delete)),
        skipped=tuple(Skipped(RunRef(r.flow, r.id), why) for r, why in reversed(skip)),
        blobs=blobs,
        blob_bytes=blob_bytes,
        size_before=size_before,
        size_after=size_before if dry_run else file_bytes(path),
        note=note,
    )


def _has_free_pages(conn: sqlite3.Connection) -> bool:
    return bool(conn.execute("PRAGMA freelist_count").fetchone()[0])
