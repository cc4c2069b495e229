"""Opening store files: pragmas, schema creation and migration, write transactions."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from .._errors import StoreError, StoreFormatError
from ._format import check_format, check_header, is_archive
from ._guards import OpenedFiles, describe, refuse_folder, refuse_truncated, unwritable_folder
from ._paths import check_path, sqlite_uri
from ._records import parse_json
from ._schema import APPLICATION_ID, SCHEMA_VERSION, add_empty_tables, migrate
from ._sqlerrors import SQLITE_FAILURES, retry_busy, sqlite_errors, store_error

__all__ = [
    "BUSY_TIMEOUT_MS",
    "PAGE_SIZE",
    "interruptible",
    "open_reader",
    "open_writer",
    "write_once",
    "write_transaction",
]

# 64 KiB pages write large blobs about 3x faster than 4 KiB ones (benchmarks/RESULTS.md).
PAGE_SIZE = 65536
BUSY_TIMEOUT_MS = 5000
MMAP_SIZE = 1 << 30
# SQLite virtual-machine steps between two looks at a stop flag: a copy moves a 1 MiB chunk
# row in a few dozen, so a stop takes effect within a few chunks.
_INTERRUPT_EVERY = 100
# New stores track free pages so that gc can hand them back to the file system
# (``PRAGMA incremental_vacuum``); costs measured in benchmarks/RESULTS.md ("auto_vacuum").
AUTO_VACUUM = "INCREMENTAL"
# Bytes a write-ahead log is cut back to when SQLite restarts it (see open_writer).
JOURNAL_SIZE_LIMIT = 64 << 20

T = TypeVar("T")


def _connect(
    path: str, *, read_only: bool, immutable: bool = False, mode: str = "ro"
) -> sqlite3.Connection:
    # Always as a URI built from the path (see _paths.sqlite_uri): SQLite must never read a
    # user's path ('file:x.db', 'x%41.db') as a URI of its own.
    # mode "rw" opens an existing file without creating it (see _query_only).
    uri = sqlite_uri(path, mode if read_only else "rwc")
    if read_only and immutable:
        uri += "&immutable=1"
    with sqlite_errors(path, "open"):
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # Defence in depth behind check_schema: SQL in the file may call no function
        # with side effects.
        conn.execute("PRAGMA trusted_schema = OFF")
    OpenedFiles.add(path)
    return conn


def _check_header(path: str) -> None:
    """Refuse another program's database or a newer store before any connection that could
    leave side files opens it (see ``_format.check_header``). Through SQLite, never with
    Python's open(): closing a descriptor of the file would drop the POSIX locks this
    process's writer holds on it (SQLite keeps such descriptors open while locks are held)."""
    try:
        conn = _connect(path, read_only=True, immutable=True)
    except StoreError:
        return  # said by the connection that follows, with the reason
    try:
        check_header(conn, path)
    finally:
        conn.close()


def _readable_as_is(exc: StoreError, path: str) -> bool:
    """Whether a read-only open failed only because the folder is read-only, with no WAL
    content beside the file (so the file alone is the whole store).

    SQLite says so with SQLITE_READONLY_DIRECTORY or READONLY_CANTINIT, or, on a read-only
    file system (read-only media, a read-only mount), with a bare SQLITE_CANTOPEN: it could
    not create the ``-shm`` file.
    """
    cause = exc.__cause__
    code = getattr(cause, "sqlite_errorname", "") if isinstance(cause, sqlite3.Error) else ""
    if code == "SQLITE_CANTOPEN":
        if not unwritable_folder(path):
            return False
    elif code not in ("SQLITE_READONLY_DIRECTORY", "SQLITE_READONLY_CANTINIT"):
        return False
    try:
        return os.path.getsize(path + "-wal") == 0
    except FileNotFoundError:
        return True
    except OSError:
        return False


def write_transaction(conn: sqlite3.Connection, body: Callable[[], None]) -> None:
    """Run ``body`` in one ``BEGIN IMMEDIATE`` transaction: committed, or rolled back."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        body()
        conn.execute("COMMIT")
    except BaseException:
        # After some errors (a full disk) SQLite has rolled back already.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def interruptible(conn: sqlite3.Connection, stop: threading.Event | None) -> None:
    """Make ``conn`` abandon the statement it runs (SQLITE_INTERRUPT, so the transaction
    rolls back) soon after ``stop`` is set: how a cancelled caller stops a long copy running
    in a worker thread. No-op for None."""
    if stop is not None:
        conn.set_progress_handler(lambda: 1 if stop.is_set() else 0, _INTERRUPT_EVERY)


def write_once(
    path: str,
    body: Callable[[sqlite3.Connection], T],
    *,
    existing: bool = False,
    setup: Callable[[sqlite3.Connection], None] | None = None,
) -> T:
    """Open a writer on ``path``, run ``body(conn)`` in one write transaction (retried while
    another process holds the lock), close, and return what ``body`` returned. Blocking.

    For the short writes made outside a run (tags, trust, gc, import). ``setup`` runs on the
    connection before the transaction (an ``ATTACH``, which SQLite refuses inside one).

    :param existing: refuse a missing store (with the reader's words) instead of creating it.
    :raises StoreError: the store cannot be opened or written (an archive, a locked,
        read-only or damaged file).
    """
    conn = open_writer(path, existing=existing)
    try:
        if setup is not None:
            with sqlite_errors(path, "write to"):
                setup(conn)
        result: list[T] = []

        def once() -> None:
            result[:] = [body(conn)]

        with sqlite_errors(path, "write to"):
            retry_busy(lambda: write_transaction(conn, once), path)
        return result[0]
    finally:
        conn.close()


def _refuse_damaged(conn: sqlite3.Connection, path: str) -> None:
    """Refuse to write into a store whose structure is damaged (``PRAGMA quick_check``).

    A damaged page that no write happens to touch would otherwise go unnoticed: new runs
    would be added to a file whose older runs read back as damaged. The check walks every
    b-tree page but not the chunk payloads: about 15 ms for a 100 MiB store.

    :raises StoreError: the check found damage (a damaged page it cannot even read is
        reported by the caller, through :func:`store_error`).
    """
    rows = conn.execute("PRAGMA quick_check(3)").fetchall()
    if rows == [("ok",)]:
        return
    found = "; ".join(str(row[0]) for row in rows)
    raise StoreError(
        f"cannot write to {describe(path)}: it is damaged (SQLite's quick_check: {found}), "
        "so asyncflow adds nothing to it; restore the file from a copy, or save the runs "
        "that still read back with `asyncflow export Flow/run ... -o saved.afa` and "
        "`asyncflow import saved.afa --store NEW.db`, then use the new store.",
        path,
    )


def open_writer(path: str, *, existing: bool = False) -> sqlite3.Connection:
    """Open (creating if needed) a store for writing: WAL, schema created or migrated.

    :param existing: refuse a missing or empty store, as a reader would (with its words),
        instead of creating one: for the writes that only change what is there.

    :raises StoreFormatError: the file is not an asyncflow store or is from a newer version.
    :raises StoreError: the file cannot be opened or created.
    """
    if existing:
        open_reader(path).close()
    refuse_folder(path)
    check_path(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise StoreError(
            f"cannot create {describe(path)}: the folder {folder!r} does not exist; "
            "create it or choose another store path.",
            path,
        )
    if os.path.exists(path):
        refuse_truncated(path)
        _check_header(path)
    conn = _connect(path, read_only=False)
    try:

        def setup() -> int:
            # Another process may be creating the file or recovering its WAL right now.
            version = check_format(conn, path, allow_empty=True)
            if version > 0 and is_archive(conn):
                raise StoreError(
                    f"{describe(path)} is a run archive, which is read-only; read it with "
                    f"Flow(name, store={path!r}), or import its runs into a store with "
                    "`asyncflow import` (asyncflow.import_archive) to resume or change them.",
                    path,
                )
            if version == 0:
                conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
                conn.execute(f"PRAGMA auto_vacuum = {AUTO_VACUUM}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            # While a long run goes on, each automatic checkpoint restarts the WAL; this
            # truncates it back to 64 MiB then (the end of a run truncates it to zero).
            conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
            conn.execute(f"PRAGMA mmap_size = {MMAP_SIZE}")
            conn.execute("PRAGMA foreign_keys = OFF")
            return version

        version = retry_busy(setup, path)
        if version > 0:
            retry_busy(lambda: _refuse_damaged(conn, path), path)
        if version < SCHEMA_VERSION:

            def upgrade() -> None:
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

            retry_busy(lambda: write_transaction(conn, upgrade), path)

        def probe() -> None:
            # SQLite opens a file it may only read without a word, and says so at the first
            # write: find out now rather than in the middle of a run.
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")

        retry_busy(probe, path)
    except SQLITE_FAILURES as exc:
        conn.close()
        raise store_error(exc, path, "write to") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _upgrade(path: str, version: int) -> None:
    """Migrate an older store so it can be read (readers expect the current schema)."""
    try:
        open_writer(path).close()
    except StoreError as exc:
        raise StoreFormatError(
            f"{describe(path)} was written by an older asyncflow (schema {version}; this "
            f"version reads schema {SCHEMA_VERSION}) and cannot be upgraded here: {exc}",
            path,
        ) from exc


def _older_archive(
    conn: sqlite3.Connection, path: str, version: int, *, as_found: bool = False
) -> bool:
    """Whether ``conn`` holds a run archive of an older schema, now readable as the current
    one (see ``_schema.add_empty_tables``: the runs it holds predate what the tables added
    since record). An archive is read-only, so it is never migrated; nor is an older store
    read ``as_found`` (by ``spin``, which leaves the file as it was).

    :raises StoreFormatError: an archive (or a store read as found) from before a change
        other than added tables.
    """
    archive = is_archive(conn)
    if not archive and not as_found:
        return False
    if add_empty_tables(conn, version):
        return True
    if not archive:
        raise StoreFormatError(
            f"the store {path!r} was written by an older asyncflow (schema {version}; this "
            f"version reads schema {SCHEMA_VERSION}), and reading it as it is would need an "
            "upgrade, which would change the file. Open it once to upgrade it (e.g. "
            f"`asyncflow stats --store {path}`), then spin again.",
            path,
        )
    raise StoreFormatError(
        f"the archive {path!r} was written by an older asyncflow ({_writer_of(conn)}, schema "
        f"{version}), whose archives this version (schema {SCHEMA_VERSION}) cannot read: "
        "tables changed since. Import it into a store with the asyncflow that wrote it, then "
        "read that store with this version (which upgrades stores) or export its runs again.",
        path,
    )


def _writer_of(conn: sqlite3.Connection) -> str:
    # The version named in an archive's manifest, quoted as data; the manifest is not
    # checked here (no reader of this version reads the archive further).
    row = conn.execute("SELECT value FROM store_info WHERE key = 'archive'").fetchone()
    try:
        manifest = parse_json(row[0]) if row is not None else None
    except ValueError:
        manifest = None
    version = manifest.get("asyncflow_version") if isinstance(manifest, dict) else None
    return f"version {version!r}" if isinstance(version, str) else "version unknown"


def open_reader(path: str, *, keep_wal: bool = False) -> sqlite3.Connection:
    """Open an existing store read-only (safe to share across threads; we serialise use).

    A store in a folder this process may not write (read-only media, another user's
    folder) is read as it is on disk, provided no write-ahead log is beside it: SQLite
    would otherwise need to create its -shm file there.

    :param keep_wal: leave the file as found (``spin`` promises it): when a write-ahead log
        with content is beside the file (left by a run that was killed, or being written by
        a live one), keep the read-only connection, which leaves the log as it is when it
        closes, so the file stays byte-identical and the log's commits stay for the next
        open; and read a store of an older schema as it is (tables added since seen empty)
        rather than upgrading it. By default the connection folds the log into the file
        when it is the last to close, and an older store is upgraded.
    :raises StoreError: no file at ``path``, an empty file, or a file that cannot be read.
    :raises StoreFormatError: the file is not an asyncflow store or is from a newer version.
    """
    refuse_folder(path)
    check_path(path)
    if not os.path.exists(path):
        raise StoreError(
            f"there is no store at {path!r}; run a flow with store={path!r} first, or pass "
            "the path of an existing store.",
            path,
        )
    refuse_truncated(path)
    _check_header(path)
    conn = _connect(path, read_only=True)
    try:
        try:
            version = retry_busy(lambda: check_format(conn, path, allow_empty=False), path)
        except StoreError as exc:
            if not _readable_as_is(exc, path):
                raise
            conn.close()
            conn = _connect(path, read_only=True, immutable=True)
            version = check_format(conn, path, allow_empty=False)
        else:
            if version >= SCHEMA_VERSION and not (keep_wal and _has_wal(path)):
                conn = _query_only(conn, path)
        if version < SCHEMA_VERSION and not retry_busy(
            lambda: _older_archive(conn, path, version, as_found=keep_wal), path
        ):
            conn.close()
            _upgrade(path, version)
            return open_reader(path, keep_wal=keep_wal)
        if version < SCHEMA_VERSION and keep_wal and not _has_wal(path) and not is_archive(conn):
            # An older store read as found: a connection that leaves no -wal/-shm behind.
            conn = _query_only(conn, path, lambda c: add_empty_tables(c, version))
        conn.execute(f"PRAGMA mmap_size = {MMAP_SIZE}")
    except UnicodeDecodeError as exc:
        conn.close()
        raise store_error(exc, path, "read") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _has_wal(path: str) -> bool:
    """Whether a write-ahead log with content is beside the store (a run is writing it, or
    one was killed before it folded its log into the file)."""
    try:
        return os.path.getsize(path + "-wal") > 0
    except OSError:
        return False


def _query_only(
    checked: sqlite3.Connection,
    path: str,
    prepare: Callable[[sqlite3.Connection], object] | None = None,
) -> sqlite3.Connection:
    """A connection for reading the store ``checked`` found to be ours: opened read-write,
    with ``PRAGMA query_only`` so that nothing is ever written through it.

    A read-only connection leaves the ``-wal`` and ``-shm`` files behind when it is the last
    to close; a read-write one removes them (after checkpointing the WAL), so a store read
    by the client is again one file. Where the file may not be written, SQLite opens it
    read-only anyway; if anything fails, the checked read-only connection is kept.
    ``prepare`` runs on the new connection first (creating ``temp`` tables, say).
    """
    try:
        conn = _connect(path, read_only=True, mode="rw")
        try:
            if prepare is not None:
                prepare(conn)
            conn.execute("PRAGMA query_only = 1")
        except BaseException:
            conn.close()
            raise
    except (StoreError, sqlite3.Error):
        return checked
    checked.close()
    return conn
