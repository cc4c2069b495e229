"""Keeping a store tidy, the SQL: tags on existing runs, statistics, the size on disk.

Garbage collection, the largest part of tidying, has a module of its own: ``_gc``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._db import write_once
from ._format import ARCHIVE_KEY
from ._plans import Plan, Query
from ._records import row_problem

__all__ = ["StatsRows", "file_bytes", "set_tags", "stats"]


def file_bytes(path: str) -> int:
    """Bytes the store takes on disk: the file and its write-ahead log (0 if missing)."""
    total = 0
    for name in (path, path + "-wal"):
        with contextlib.suppress(OSError):
            total += os.path.getsize(name)
    return total


# --- tags ------------------------------------------------------------------------------------


def set_tags(
    path: str, flow: str, run_id: int, add: Sequence[str], remove: Sequence[str]
) -> tuple[str, ...] | None:
    """Add and remove tags of run ``run_id`` of ``flow`` in one write transaction.

    :returns: the run's tags afterwards, sorted; None if the store has no such run.
    :raises StoreError: the store cannot be written (an archive, a locked or damaged file).
    """

    def body(conn: sqlite3.Connection) -> tuple[str, ...] | None:
        found = conn.execute("SELECT 1 FROM runs WHERE flow = ? AND id = ?", (flow, run_id))
        if found.fetchone() is None:
            return None
        conn.executemany(
            "INSERT OR IGNORE INTO run_tags (run_id, tag) VALUES (?, ?)",
            [(run_id, t) for t in add],
        )
        conn.executemany(
            "DELETE FROM run_tags WHERE run_id = ? AND tag = ?", [(run_id, t) for t in remove]
        )
        rows = conn.execute("SELECT tag FROM run_tags WHERE run_id = ? ORDER BY tag", (run_id,))
        return tuple(str(row[0]) for row in rows)

    return write_once(path, body, existing=True)


# --- statistics ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatsRows:
    """What :func:`stats` reads, in one snapshot.

    :param by_status: run status as stored -> number of runs (``running`` rows excluded).
    :param running: the lease of each run stored as ``running`` (pid, host, heartbeat), so
        the caller can tell live runs from crashed ones.
    """

    flows: int
    by_status: dict[str, int]
    running: list[tuple[Any, Any, Any]]
    tasks: int
    artifacts: int
    blobs: int
    stored_bytes: int
    referenced_bytes: int
    page_size: int
    free_pages: int
    archive: str | None


def stats() -> Plan[StatsRows]:
    """The counts and sizes of a store (a read plan)."""
    flows = yield Query("SELECT count(DISTINCT flow) FROM runs")
    statuses = yield Query(
        "SELECT status, count(*) FROM runs WHERE status <> 'running' GROUP BY status"
    )
    running = yield Query(
        "SELECT owner_pid, owner_host, heartbeat_at FROM runs WHERE status = 'running'"
    )
    tasks = yield Query("SELECT count(*) FROM tasks")
    artifacts = yield Query("SELECT count(*) FROM artifacts")
    blobs = yield Query("SELECT count(*), coalesce(sum(size), 0) FROM blobs")
    referenced = yield Query(
        "SELECT (SELECT coalesce(sum(b.size), 0) FROM artifacts AS a "
        "JOIN blobs AS b ON b.sha = a.sha) + (SELECT coalesce(sum(b.size), 0) "
        "FROM run_params AS p JOIN blobs AS b ON b.sha = p.sha) + (SELECT "
        "coalesce(sum(b.size), 0) FROM cards AS c JOIN blobs AS b ON b.sha = c.sha)"
    )
    page_size = yield Query("PRAGMA page_size")
    free = yield Query("PRAGMA freelist_count")
    archive = yield Query("SELECT value FROM store_info WHERE key = ?", (ARCHIVE_KEY,))
    for row in running:
        problem = row_problem("runs", ("owner_pid", "owner_host", "heartbeat_at"), row)
        if problem is not None:
            raise TypeError(problem)  # the driver says: a record asyncflow never writes
    return StatsRows(
        flows=int(flows[0][0]),
        by_status={str(s): int(n) for s, n in statuses},
        running=[(r[0], r[1], r[2]) for r in running],
        tasks=int(tasks[0][0]),
        artifacts=int(artifacts[0][0]),
        blobs=int(blobs[0][0]),
        stored_bytes=int(blobs[0][1]),
        referenced_bytes=int(referenced[0][0]),
        page_size=int(page_size[0][0]),
        free_pages=int(free[0][0]),
        archive=None if not archive else str(archive[0][0]),
    )
