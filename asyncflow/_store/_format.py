"""Whether a file is an asyncflow store this version may use: application id, schema version
and SQL objects, and whether it is a run archive."""

from __future__ import annotations

import sqlite3

from .._errors import StoreError, StoreFormatError
from ._guards import describe
from ._schema import APPLICATION_ID, SCHEMA_VERSION, schema_problem, table_is_ours
from ._sqlerrors import is_busy, store_error

__all__ = [
    "ARCHIVE_KEY",
    "check_format",
    "check_header",
    "check_schema",
    "is_archive",
]


def check_header(conn: sqlite3.Connection, path: str) -> None:
    """Refuse a database of another program or a newer asyncflow's store from its header
    alone, read through ``conn``: an immutable connection, which opens no ``-wal`` or
    ``-shm`` (the connection that :func:`check_format` needs would leave both beside a file
    we then refuse). Anything else, and a header that cannot be read, is left to
    :func:`check_format`.

    :raises StoreFormatError: as :func:`check_format` says of those two.
    """
    try:
        app_id, version = conn.execute(
            "SELECT (SELECT application_id FROM pragma_application_id()),"
            " (SELECT user_version FROM pragma_user_version())"
        ).fetchone()
    except sqlite3.Error:
        return
    if app_id not in (0, APPLICATION_ID):
        raise _foreign(path)
    if app_id == APPLICATION_ID and version > SCHEMA_VERSION:
        raise _newer(path, version)


def _foreign(path: str) -> StoreFormatError:
    return StoreFormatError(
        f"{describe(path)} is a SQLite database of another program, not an asyncflow "
        "store; choose another path for store=.",
        path,
    )


def _newer(path: str, version: int) -> StoreFormatError:
    return StoreFormatError(
        f"{describe(path)} was written by a newer asyncflow (schema {version}, this "
        f"version reads up to {SCHEMA_VERSION}); upgrade asyncflow to read it.",
        path,
    )


def check_format(conn: sqlite3.Connection, path: str, *, allow_empty: bool) -> int:
    """Return the file's schema version after checking it is ours and not from the future.

    :raises StoreFormatError: another program's database, or a newer asyncflow's store.
    :raises StoreError: the file is empty (unless ``allow_empty``), or cannot be read.
    """
    try:
        # One statement, so one snapshot: read one by one, another process creating the
        # store could commit in between (id still 0 but tables there: "another program").
        app_id, version, objects = conn.execute(
            "SELECT (SELECT application_id FROM pragma_application_id()),"
            " (SELECT user_version FROM pragma_user_version()),"
            " (SELECT count(*) FROM main.sqlite_master)"
        ).fetchone()
    except sqlite3.DatabaseError as exc:
        if is_busy(exc):
            raise  # another process holds the file for a moment: the caller retries
        raise store_error(exc, path, "read") from exc
    if app_id == 0 and version == 0 and objects == 0:
        if allow_empty:
            return 0
        # What SQLite makes of a file created (e.g. by `touch`) but never written.
        raise StoreError(
            f"{describe(path)} is empty: it holds no runs and is not an asyncflow store yet; "
            "run a flow with this store to fill it, or pass the path of an existing store.",
            path,
        )
    if app_id != APPLICATION_ID:
        raise _foreign(path)
    if version > SCHEMA_VERSION:
        raise _newer(path, version)
    check_schema(conn, path, int(version))
    return int(version)


def check_schema(conn: sqlite3.Connection, path: str, version: int, schema: str = "main") -> None:
    """Refuse a file whose SQL objects are not exactly those asyncflow creates for schema
    ``version`` (see ``_schema.schema_problem``): part of every :func:`check_format`, so no
    store or archive is used before it passes. ``schema``: an attached file's name.

    :raises StoreFormatError: an unknown, changed or missing table, index, trigger or view.
    """
    try:
        problem = schema_problem(conn, version, schema)
        # Which file it is, asked only of a store_info exactly as asyncflow makes it.
        archive = (
            problem is not None
            and table_is_ours(conn, "store_info", version, schema)
            and conn.execute(
                f"SELECT 1 FROM {schema}.store_info WHERE key = ?", (ARCHIVE_KEY,)
            ).fetchone()
            is not None
        )
    except sqlite3.DatabaseError as exc:
        if is_busy(exc):
            raise
        raise store_error(exc, path, "read") from exc
    if archive:
        raise StoreError(
            f"the archive {path!r} is damaged or was changed after export: its tables are not "
            f"the ones asyncflow writes ({problem}); ask for a fresh copy of the archive (or "
            "export the runs again).",
            path,
        )
    if problem is not None:
        raise StoreFormatError(
            f"{describe(path)} does not hold the schema asyncflow writes ({problem}); "
            "asyncflow never runs SQL objects it did not create, such as triggers and views, "
            "so it will not use this file. If you added them yourself, drop them; otherwise "
            "restore the file from a copy you trust.",
            path,
        )


ARCHIVE_KEY = "archive"


def is_archive(conn: sqlite3.Connection) -> bool:
    """Whether the store on ``conn`` is a run archive (its ``store_info`` has a manifest)."""
    row = conn.execute("SELECT 1 FROM store_info WHERE key = ?", (ARCHIVE_KEY,)).fetchone()
    return row is not None
