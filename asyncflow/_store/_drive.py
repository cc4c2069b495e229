"""The synchronous driver of the read plans (``_plans``): one snapshot per plan."""

from __future__ import annotations

import functools
import sqlite3
from typing import TypeVar

from ._plans import BEGIN_READ, END_READ, Plan, Query, Rows, record_error
from ._sqlerrors import SQLITE_FAILURES, retry_busy, store_error

__all__ = ["drive"]

T = TypeVar("T")


def _fetch(conn: sqlite3.Connection, query: Query) -> Rows:
    return conn.execute(query.sql, query.params).fetchall()


def drive(conn: sqlite3.Connection, plan: Plan[T], path: str) -> T:
    """Run ``plan`` on ``conn`` inside one read transaction and return its result.

    :raises StoreError: SQLite failed (the message names the file and what to do).
    """
    try:
        if conn.in_transaction:
            conn.execute(END_READ)
        conn.execute(BEGIN_READ)
        try:
            query = next(plan)
            while True:
                # Only a transaction's first read takes a snapshot, the one that may wait.
                rows = retry_busy(functools.partial(_fetch, conn, query), path)
                try:
                    query = plan.send(rows)
                except (TypeError, ValueError) as exc:
                    raise record_error(exc, path) from exc
        except StopIteration as done:
            result: T = done.value
            return result
        finally:
            plan.close()
            conn.execute(END_READ)
    except SQLITE_FAILURES as exc:
        raise store_error(exc, path, "read") from exc
