"""Giving a new run its id: the id is claimed clean, and a store whose ids are used up says so.

Nothing in the file ties a run's rows (its tags, parameters, tasks, attempts, artifacts) to
the run's row in ``runs``: foreign keys are off, and ``artifacts`` declares none. A store
prepared by someone else may therefore hold rows for an id that no run has *yet*: tasks,
artifacts pointing at a pickle of theirs, a ``scratch`` tag. The run that later receives the
id would adopt them as its own, trusted rows. So the one function here that inserts a run
row, :func:`insert_run` (used by the writer's ``CreateRun`` and by import), deletes, in the
same transaction, every row that already names the new id: the rows of each table with a
``run_id`` column (:func:`_schema.run_tables`), gc's note that a run of that id was deleted,
and any other run's claim to be resumed from it. A new run starts with exactly the rows it
writes, whatever the file held, and however ``sqlite_sequence`` was set (an id below it that
gc freed, or one far ahead, is claimed the same way).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from .._errors import StoreError
from ._records import is_time, parse_json
from ._schema import run_tables

__all__ = ["DELETED_KEY", "MAX_RUN_ID", "insert_run", "parse_deleted"]

#: ``store_info`` key prefix under which gc notes each run it deleted (``gc_deleted:12``),
#: so that asking for the run later says it was deleted, not just "no such run". Here, not
#: in ``_gc``, because a new run clears it: a run does not import gc.
DELETED_KEY = "gc_deleted:"

#: The largest rowid SQLite gives; AUTOINCREMENT then fails with SQLITE_FULL.
MAX_RUN_ID = 2**63 - 1


def parse_deleted(value: object, flow: str) -> float | None:
    """The time in a ``gc_deleted:<id>`` note if it is about a run of ``flow``, else None."""
    try:
        note = parse_json(value)
        if note["flow"] == flow and is_time(note["deleted_at"]):
            return float(note["deleted_at"])
    except (ValueError, KeyError, TypeError):
        pass
    return None  # not a note gc writes (another flow's, or damaged): no note


def _store_path(conn: sqlite3.Connection) -> str:
    return str(conn.execute("PRAGMA main.database_list").fetchone()[2])


def _refuse_used_up(conn: sqlite3.Connection) -> None:
    """Refuse (rather than let SQLite say "disk full") when no run id is left."""
    # CAST: sqlite_sequence has no column type, and SQLite reads its seq as an integer.
    last = conn.execute(
        "SELECT max(coalesce((SELECT CAST(seq AS INTEGER) FROM main.sqlite_sequence "
        "WHERE name = 'runs'), 0), coalesce((SELECT max(id) FROM main.runs), 0))"
    ).fetchone()[0]
    if isinstance(last, int) and last >= MAX_RUN_ID:
        path = _store_path(conn)
        raise StoreError(
            f"cannot add a run to the store file {path!r}: its run ids are used up (the last "
            f"id given out is {last}, the largest SQLite allows). asyncflow numbers runs from "
            "1, so the file was edited or is damaged; restore it from a copy, or export the "
            "runs you need (`asyncflow export`) and import them into a new store.",
            path,
        )


def _claim(conn: sqlite3.Connection, run_id: int) -> None:
    """Delete every row that names ``run_id``, except the run's own row in ``runs``."""
    for table in run_tables():
        conn.execute(f"DELETE FROM main.{table} WHERE run_id = ?", (run_id,))
    conn.execute("DELETE FROM main.store_info WHERE key = ?", (f"{DELETED_KEY}{run_id}",))
    conn.execute(
        "UPDATE main.runs SET origin_run_id = NULL WHERE origin_run_id = ? AND id <> ?",
        (run_id, run_id),
    )


def insert_run(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> int:
    """Run ``sql`` (an ``INSERT INTO main.runs`` that lets SQLite choose the id) inside the
    caller's write transaction, and return the new id, claimed clean (see the module).

    :raises StoreError: the store's run ids are used up (an edited or damaged file).
    """
    _refuse_used_up(conn)
    run_id = conn.execute(sql, params).lastrowid
    assert run_id is not None
    _claim(conn, run_id)
    return run_id
