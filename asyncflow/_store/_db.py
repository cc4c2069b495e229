"""Opening store files: pragmas, format checks, schema creation and migration."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

from .._errors import StoreError, StoreFormatError
from ._schema import APPLICATION_ID, SCHEMA_VERSION, migrate

__all__ = [
    "BUSY_TIMEOUT_MS",
    "PAGE_SIZE",
    "check_format",
    "open_reader",
    "open_writer",
    "retry_busy",
]

# 64 KiB pages write large blobs about 3x faster than 4 KiB ones (benchmarks/RESULTS.md).
PAGE_SIZE = 65536
BUSY_TIMEOUT_MS = 5000
MMAP_SIZE = 1 << 30

T = TypeVar("T")


def _describe(path: str) -> str:
    return f"the store file {path!r}"


def check_format(conn: sqlite3.Connection, path: str, *, allow_empty: bool) -> int:
    """Return the file's schema version after checking it is ours and not from the future.

    :raises StoreFormatError: another program's database, or a newer asyncflow's store.
    """
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        has_tables = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
        ).fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise StoreFormatError(
            f"{_describe(path)} is not an asyncflow store (SQLite says: {exc}); "
            "point store= at an asyncflow store file or at a path that does not exist yet.",
            path,
        ) from exc
    if app_id == 0 and version == 0 and has_tables == 0 and allow_empty:
        return 0
    if app_id != APPLICATION_ID:
        raise StoreFormatError(
            f"{_describe(path)} is a SQLite database of another program, not an asyncflow "
            "store; choose another path for store=.",
            path,
        )
    if version > SCHEMA_VERSION:
        raise StoreFormatError(
            f"{_describe(path)} was written by a newer asyncflow (schema {version}, this "
            f"version reads up to {SCHEMA_VERSION}); upgrade asyncflow to read it.",
            path,
        )
    return int(version)


def _connect(path: str, *, read_only: bool) -> sqlite3.Connection:
    try:
        if read_only:
            uri = "file:" + os.path.abspath(path).replace("?", "%3f").replace("#", "%23")
            conn = sqlite3.connect(
                uri + "?mode=ro", uri=True, check_same_thread=False, isolation_level=None
            )
        else:
            conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    except sqlite3.Error as exc:
        raise StoreError(
            f"cannot open {_describe(path)}: {exc}; check that the folder exists and "
            "that you may read (and, to run flows, write) it.",
            path,
        ) from exc
    return conn


def retry_busy(fn: Callable[[], T], path: str, *, attempts: int = 50) -> T:
    """Run ``fn``, retrying while another process holds the write lock past busy_timeout."""
    delay = 0.01
    for attempt in range(attempts):
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if attempt == attempts - 1:
                raise StoreError(
                    f"{_describe(path)} stayed locked by another process for too long; "
                    "retry later or check for a stuck process.",
                    path,
                ) from exc
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
    raise AssertionError("unreachable")


def open_writer(path: str) -> sqlite3.Connection:
    """Open (creating if needed) a store for writing: WAL, schema created or migrated.

    :raises StoreFormatError: the file is not an asyncflow store or is from a newer version.
    :raises StoreError: the file cannot be opened or created.
    """
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise StoreError(
            f"cannot create {_describe(path)}: the folder {folder!r} does not exist; "
            "create it or choose another store path.",
            path,
        )
    conn = _connect(path, read_only=False)
    try:
        version = check_format(conn, path, allow_empty=True)
        if version == 0:
            conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA mmap_size = {MMAP_SIZE}")
        conn.execute("PRAGMA foreign_keys = OFF")
        if version < SCHEMA_VERSION:

            def upgrade() -> None:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    current = check_format(conn, path, allow_empty=True)
                    if current < SCHEMA_VERSION:
                        if current == 0:
                            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                        migrate(conn, current)
                        if current == 0:
                            conn.execute(
                                "INSERT INTO store_info (key, value) VALUES ('created_at', ?)",
                                (repr(time.time()),),
                            )
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise

            retry_busy(upgrade, path)
    except sqlite3.Error as exc:
        conn.close()
        raise StoreError(f"cannot use {_describe(path)}: {exc}", path) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def open_reader(path: str) -> sqlite3.Connection:
    """Open an existing store read-only (safe to share across threads; we serialise use).

    :raises StoreError: no file at ``path``.
    :raises StoreFormatError: the file is not an asyncflow store or is from a newer version.
    """
    if not os.path.exists(path):
        raise StoreError(
            f"there is no store at {path!r}; run a flow with store={path!r} first, or pass "
            "the path of an existing store.",
            path,
        )
    conn = _connect(path, read_only=True)
    try:
        check_format(conn, path, allow_empty=False)
        conn.execute(f"PRAGMA mmap_size = {MMAP_SIZE}")
    except BaseException:
        conn.close()
        raise
    return conn
