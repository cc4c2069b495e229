"""Opening store files: pragmas, format checks, schema creation and migration."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import ClassVar, TypeVar

from .._errors import StoreError, StoreFormatError
from ._paths import check_path, sqlite_uri
from ._schema import APPLICATION_ID, SCHEMA_VERSION, migrate, schema_problem, table_is_ours

__all__ = [
    "ARCHIVE_KEY",
    "BUSY_TIMEOUT_MS",
    "PAGE_SIZE",
    "SQLITE_FAILURES",
    "check_format",
    "check_schema",
    "interruptible",
    "is_archive",
    "is_busy",
    "open_reader",
    "open_writer",
    "retry_busy",
    "sqlite_errors",
    "store_error",
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


def _describe(path: str) -> str:
    return f"the store file {path!r}"


class _OpenedFiles:
    """The files (device, inode) this process has opened with SQLite.

    POSIX drops every lock a process holds on a file when the process closes *any*
    descriptor of that file. SQLite guards its own descriptors against this, but a plain
    ``open()``/``close()`` of a store file next to a live SQLite connection of this process
    would silently release that connection's locks: another process could then checkpoint
    and delete the write-ahead log our writer is still appending to, and its later commits
    would be invisible (and lost in a crash). So once SQLite has opened a file in this
    process, asyncflow never opens it with Python again. This mirrors a process-wide fact
    of the operating system, hence the process-wide set.
    """

    _keys: ClassVar[set[tuple[int, int]]] = set()
    _lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def add(cls, path: str) -> None:
        try:
            st = os.stat(path)
        except OSError:
            return
        with cls._lock:
            cls._keys.add((st.st_dev, st.st_ino))

    @classmethod
    def seen(cls, path: str) -> bool:
        try:
            st = os.stat(path)
        except OSError:
            return False
        with cls._lock:
            return (st.st_dev, st.st_ino) in cls._keys


def _truncation(path: str) -> tuple[int, int] | None:
    """(bytes in the file, bytes its SQLite header declares) if the file is shorter.

    Only for a file SQLite has not opened in this process yet (see :class:`_OpenedFiles`):
    it is checked when first opened, which is when a cut-short copy arrives.
    """
    if _OpenedFiles.seen(path):
        return None
    try:
        with open(path, "rb") as fh:
            head = fh.read(100)
            size = os.fstat(fh.fileno()).st_size
    except OSError:
        return None
    if len(head) < 100 or not head.startswith(b"SQLite format 3\x00"):
        return None
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    # The page count in the header is valid only if it was written with the change counter.
    if head[24:28] != head[92:96] or size >= pages * page_size:
        return None
    return size, pages * page_size


def _truncated(path: str, cut: tuple[int, int], action: str, said: str = "") -> StoreError:
    return StoreError(
        f"cannot {action} {_describe(path)}: it is truncated: it has {cut[0]} bytes, but its "
        f"header says {cut[1]}{said}; restore the file from a copy, or pass store= a new path "
        "to start afresh.",
        path,
    )


def _refuse_truncated(path: str) -> None:
    """Refuse a file cut short of the size its header declares (an interrupted copy).

    SQLite reads pages missing from the end of a file as zeros, which can hand back damaged
    values without a word. Checked only while no write-ahead log holds pages: then the
    file alone is the whole database and must be complete.
    """
    for attempt in range(2):
        cut = _truncation(path)
        try:
            logged = os.path.getsize(path + "-wal") > 0
        except OSError:
            logged = False
        if cut is None or logged:
            return
        if attempt == 0:
            time.sleep(0.05)  # a checkpoint of another process may just be extending the file
    assert cut is not None
    raise _truncated(path, cut, "use")


# What a SQLite call may raise on a damaged file: its errors, and UnicodeDecodeError when the
# message SQLite gives quotes bytes of the file that are not UTF-8 (a garbled schema):
# Python then fails to build the sqlite3 exception itself.
SQLITE_FAILURES = (sqlite3.Error, UnicodeDecodeError)


def store_error(exc: sqlite3.Error | UnicodeDecodeError, path: str, action: str) -> StoreError:
    """Explain a SQLite failure on the store at ``path``: what is wrong and what to do.

    :param exc: what SQLite raised.
    :param path: the store file.
    :param action: what asyncflow was doing, as in "cannot <action> the store file":
        ``"open"``, ``"read"`` or ``"write to"``.
    :returns: a :class:`StoreFormatError` if the file is not a SQLite database at all, else
        a :class:`StoreError`; the caller raises it ``from exc``.
    """
    code = getattr(exc, "sqlite_errorname", "") or ""
    head = f"cannot {action} {_describe(path)}"
    if isinstance(exc, UnicodeDecodeError):
        return StoreError(
            f"{head}: it is damaged (SQLite's error quotes bytes of the file that are not "
            "text, as a garbled schema does); restore the file from a copy, or pass store= a "
            "new path to start afresh.",
            path,
        )
    said = f"(SQLite: {exc})"
    folder = os.path.dirname(os.path.abspath(path))
    if code == "SQLITE_NOTADB":
        return StoreFormatError(
            f"{_describe(path)} is not an asyncflow store: it is not a SQLite database {said}; "
            "point store= at an asyncflow store, or at a path that does not exist yet to "
            "start a new one.",
            path,
        )
    if code.startswith("SQLITE_CORRUPT"):
        cut = _truncation(path)
        if cut is not None:
            return _truncated(path, cut, action, f" {said}")
        return StoreError(
            f"{head}: it is damaged {said}; restore the file from a copy, or pass store= a new "
            "path to start afresh.",
            path,
        )
    if code == "SQLITE_FULL":
        return StoreError(
            f"{head}: the disk holding it is full {said}; free some space, then run the flow "
            "again.",
            path,
        )
    if code == "SQLITE_READONLY_DIRECTORY" or (
        code == "SQLITE_CANTOPEN" and os.path.isfile(path) and _unwritable_folder(path)
    ):
        # (On a read-only file system SQLite says only "unable to open database file".)
        name = os.path.basename(path)
        return StoreError(
            f"cannot use {_describe(path)}: its folder {folder!r} is read-only, and SQLite "
            f"must create {name}-wal and {name}-shm beside it {said}; make the folder "
            "writable, or copy the store to a folder you may write.",
            path,
        )
    if code.startswith("SQLITE_READONLY"):
        return StoreError(
            f"{head}: the file is read-only {said}; make it (and its -wal and -shm files, if "
            "any) writable, or pass store= a path you may write.",
            path,
        )
    if code.startswith("SQLITE_CANTOPEN"):
        if not os.path.exists(path):
            return StoreError(
                f"{head}: the file cannot be created in the folder {folder!r} {said}; make the "
                "folder writable, or choose a store path in a folder you may write.",
                path,
            )
        return StoreError(
            f"{head} {said}; check that you may read and write the file and its folder.",
            path,
        )
    if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return StoreError(
            f"{head}: another process holds it locked {said}; retry later, or check for a "
            "stuck process.",
            path,
        )
    if code.startswith("SQLITE_IOERR"):
        return StoreError(
            f"{head}: the operating system reported an I/O error {said}; check the disk and "
            "that the file is still there (a network drive may have gone away), then retry.",
            path,
        )
    return StoreError(
        f"{head} {said}; check that it is an intact asyncflow store that you may read and write.",
        path,
    )


@contextlib.contextmanager
def sqlite_errors(path: str, action: str) -> Iterator[None]:
    """Turn a SQLite failure inside the block into the :func:`store_error` for it."""
    try:
        yield
    except SQLITE_FAILURES as exc:
        raise store_error(exc, path, action) from exc


def _refuse_folder(path: str) -> None:
    if os.path.isdir(path):
        raise StoreError(
            f"{_describe(path)} is a folder, not a file; pass the path of a file, such as "
            f"{os.path.join(path, 'asyncflow.db')!r}.",
            path,
        )


def check_format(conn: sqlite3.Connection, path: str, *, allow_empty: bool) -> int:
    """Return the file's schema version after checking it is ours and not from the future.

    :raises StoreFormatError: another program's database, or a newer asyncflow's store.
    :raises StoreError: the file is empty (unless ``allow_empty``), or cannot be read.
    """
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        objects = conn.execute("SELECT count(*) FROM main.sqlite_master").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        if is_busy(exc):
            raise  # another process holds the file for a moment: the caller retries
        raise store_error(exc, path, "read") from exc
    if app_id == 0 and version == 0 and objects == 0:
        if allow_empty:
            return 0
        # What SQLite makes of a file created (e.g. by `touch`) but never written.
        raise StoreError(
            f"{_describe(path)} is empty: it holds no runs and is not an asyncflow store yet; "
            "run a flow with this store to fill it, or pass the path of an existing store.",
            path,
        )
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
            f"{_describe(path)} does not hold the schema asyncflow writes ({problem}); "
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
    _OpenedFiles.add(path)
    return conn


_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite's "database is locked" (SQLITE_BUSY / SQLITE_LOCKED, any
    extended code such as BUSY_SNAPSHOT or BUSY_RECOVERY): worth waiting and retrying."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    return "locked" in str(exc) or "busy" in str(exc)


def retry_busy(fn: Callable[[], T], path: str, *, attempts: int = 50) -> T:
    """Run ``fn``, retrying while another process holds the write lock past busy_timeout.

    Each attempt already waits up to ``BUSY_TIMEOUT_MS`` inside SQLite; the retries add
    pauses growing to 0.5 s, so a wait is bounded (about five minutes at worst) and only
    then reported as a StoreError.
    """
    delay = 0.01
    for attempt in range(attempts):
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
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


def _unwritable_folder(path: str) -> bool:
    """Whether the store's folder is on a read-only file system, or may not be written."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return True
    except OSError:
        return False
    return not os.access(folder, os.W_OK)


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
        if not _unwritable_folder(path):
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
        f"cannot write to {_describe(path)}: it is damaged (SQLite's quick_check: {found}), "
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
    _refuse_folder(path)
    check_path(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise StoreError(
            f"cannot create {_describe(path)}: the folder {folder!r} does not exist; "
            "create it or choose another store path.",
            path,
        )
    if os.path.exists(path):
        _refuse_truncated(path)
    conn = _connect(path, read_only=False)
    try:

        def setup() -> int:
            # Another process may be creating the file or recovering its WAL right now.
            version = check_format(conn, path, allow_empty=True)
            if version > 0 and is_archive(conn):
                raise StoreError(
                    f"{_describe(path)} is a run archive, which is read-only; read it with "
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
            f"{_describe(path)} was written by an older asyncflow (schema {version}; this "
            f"version reads schema {SCHEMA_VERSION}) and cannot be upgraded here: {exc}",
            path,
        ) from exc


def open_reader(path: str) -> sqlite3.Connection:
    """Open an existing store read-only (safe to share across threads; we serialise use).

    A store in a folder this process may not write (read-only media, another user's
    folder) is read as it is on disk, provided no write-ahead log is beside it: SQLite
    would otherwise need to create its -shm file there.

    :raises StoreError: no file at ``path``, an empty file, or a file that cannot be read.
    :raises StoreFormatError: the file is not an asyncflow store or is from a newer version.
    """
    _refuse_folder(path)
    check_path(path)
    if not os.path.exists(path):
        raise StoreError(
            f"there is no store at {path!r}; run a flow with store={path!r} first, or pass "
            "the path of an existing store.",
            path,
        )
    _refuse_truncated(path)
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
            if version >= SCHEMA_VERSION:
                conn = _query_only(conn, path)
        if version < SCHEMA_VERSION:
            conn.close()
            _upgrade(path, version)
            return open_reader(path)
        conn.execute(f"PRAGMA mmap_size = {MMAP_SIZE}")
    except UnicodeDecodeError as exc:
        conn.close()
        raise store_error(exc, path, "read") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _query_only(checked: sqlite3.Connection, path: str) -> sqlite3.Connection:
    """A connection for reading the store ``checked`` found to be ours: opened read-write,
    with ``PRAGMA query_only`` so that nothing is ever written through it.

    A read-only connection leaves the ``-wal`` and ``-shm`` files behind when it is the last
    to close; a read-write one removes them (after checkpointing the WAL), so a store read
    by the client is again one file. Where the file may not be written, SQLite opens it
    read-only anyway; if anything fails, the checked read-only connection is kept.
    """
    try:
        conn = _connect(path, read_only=True, mode="rw")
        try:
            conn.execute("PRAGMA query_only = 1")
        except BaseException:
            conn.close()
            raise
    except (StoreError, sqlite3.Error):
        return checked
    checked.close()
    return conn
