"""Exporting runs: copy chosen runs of a store into a new run archive (see ``_archive``).

Export copies rows and blobs with ``INSERT ... SELECT`` from the attached source, so no value
passes through Python memory; blob macs are never copied. Everything it copies, and the runs
its manifest lists, come from one snapshot of the source (one transaction), so a gc or a run
committing meanwhile cannot make the archive disagree with itself. It never writes over the
store it reads (same file under any name, or its companion files).
"""

from __future__ import annotations

import contextlib
import errno
import getpass
import hashlib
import json
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Sequence
from typing import Any

from .._errors import StoreError
from .._version import __version__
from ._db import PAGE_SIZE, interruptible, open_reader
from ._format import ARCHIVE_KEY
from ._lease import crashed_reason, host_name, owner_alive
from ._manifest import ARCHIVE_FORMAT, content_digest
from ._paths import check_path, sqlite_uri
from ._plans import record_error
from ._records import row_problem
from ._schema import APPLICATION_ID, SCHEMA_VERSION, migrate, missing_tables
from ._sqlerrors import SQLITE_FAILURES, retry_busy, sqlite_errors, store_error

__all__ = ["RUN_COLUMNS", "export_archive", "ro_uri"]

# Archives whose payload is at most this big use 4 KiB pages: a small bug-report archive then
# takes kilobytes, not a 64 KiB page per table and index.
_SMALL_ARCHIVE = 16 << 20
_SMALL_PAGE = 4096
RUN_COLUMNS = (
    "flow, status, created_at, finished_at, origin_run_id, graph, error, owner_pid, "
    "owner_host, heartbeat_at, uid, source_sha"
)


def ro_uri(path: str) -> str:
    """A read-only SQLite URI of ``path`` (for ATTACH)."""
    return sqlite_uri(path, "ro")


# SQLite's codes for a failure to write the archive itself: the store is only read, so a
# full disk or a refused write is the archive's (a store on read-only media says
# READONLY_DIRECTORY or READONLY_CANTINIT instead, and is reported as the store's).
_OUTPUT_CODES = frozenset({"SQLITE_FULL", "SQLITE_READONLY", "SQLITE_IOERR_WRITE"})


def _is_output_failure(exc: BaseException) -> bool:
    return getattr(exc, "sqlite_errorname", "") in _OUTPUT_CODES


def _output_error(exc: sqlite3.Error | UnicodeDecodeError | OSError, dest: str) -> StoreError:
    """The archive being written at ``dest`` cannot be created or written (a full disk, a
    read-only folder or file system): said of the archive, never of the store read."""
    code = getattr(exc, "sqlite_errorname", "") or ""
    said = f"(SQLite: {exc})" if isinstance(exc, sqlite3.Error) else f"({exc})"
    folder = os.path.dirname(dest)
    if code == "SQLITE_FULL" or (isinstance(exc, OSError) and exc.errno == errno.ENOSPC):
        why, fix = "the disk holding it is full", "free some space, or export to another disk"
    elif code.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN")):
        why = f"its folder {folder!r} is read-only or may not be written"
        fix = "export to a folder you may write (-o on the command line)"
    else:
        why = "the system refused to write it (a disk error, or a limit on file size)"
        fix = "check the disk and the limits of this process, or export to another disk"
    return StoreError(
        f"cannot write the archive {dest!r}: {why} {said}; {fix}. Nothing was written, and "
        "the store is unchanged.",
        dest,
    )


def _live_reason(row: Sequence[Any]) -> str | None:
    status, pid, host, beat = row
    if status != "running":
        return None
    return None if crashed_reason(status, pid, host, beat) is not None else "running"


def export_archive(
    source: str,
    dest: str,
    runs: Sequence[tuple[str, int]],
    *,
    overwrite: bool = False,
    stop: threading.Event | None = None,
) -> dict[str, Any]:
    """Write the runs ``(flow, id)`` of the store ``source`` into a new archive ``dest``.

    The archive is built under a temporary name beside ``dest`` and renamed into place, so
    ``dest`` is either the whole archive or untouched. Blocking.

    :param stop: once set, the copy is abandoned (and ``dest`` left untouched).
    :returns: the manifest written into the archive.
    :raises StoreError: a run does not exist or is still running, ``dest`` exists (unless
        ``overwrite``), a file cannot be read or written, or ``stop`` was set.
    """
    check_path(dest)
    dest = os.path.abspath(dest)
    if os.path.isdir(dest):
        raise StoreError(f"cannot export to {dest!r}: it is a folder; give a file name.", dest)
    if os.path.exists(dest) and not overwrite:
        raise StoreError(
            f"cannot export to {dest!r}: the file exists; choose another name, or overwrite "
            "it (overwrite=True, or --force on the command line).",
            dest,
        )
    folder = os.path.dirname(dest)
    if not os.path.isdir(folder):
        raise StoreError(
            f"cannot export to {dest!r}: the folder {folder!r} does not exist; create it first.",
            dest,
        )
    _refuse_the_store_itself(source, dest)
    picked = list(dict.fromkeys(runs))
    if not picked:
        raise StoreError("nothing to export: pass at least one run.", source)
    # Opening checks the source's format (and upgrades an older store); archives may be
    # exported from too (a part of one, say).
    open_reader(source).close()
    _remove_stale_temps(dest)
    tmp = f"{dest}.{os.getpid()}.{_host_tag()}.{secrets.token_hex(4)}.tmp"
    try:
        manifest = _build(source, tmp, dest, picked, stop)
        try:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            if stop is not None and stop.is_set():  # cancelled before the archive appears
                raise StoreError("stopped", dest)
            os.replace(tmp, dest)
        except OSError as exc:
            raise _output_error(exc, dest) from exc
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if stop is not None and stop.is_set() and isinstance(exc, StoreError):
            raise StoreError(
                f"the export to {dest!r} was interrupted (its caller was cancelled); nothing "
                "was written.",
                dest,
            ) from exc
        raise
    return manifest


def _host_tag() -> str:
    # Temporary archives are named <dest>.<pid>.<host tag>.<random>.tmp: the pid and the
    # host say whose they are, so that a later export can tell one left by a dead process.
    return hashlib.sha256(host_name().encode()).hexdigest()[:8]


def _remove_stale_temps(dest: str) -> None:
    """Delete the temporary archives that exports to ``dest`` left behind when their process
    was killed (SIGKILL, a crash, a power cut): only those made on this host by a process
    that is gone. One being written by a live process, or on another host, is kept."""
    folder, name = os.path.split(dest)
    pattern = re.compile(re.escape(name) + r"\.(\d+)\.([0-9a-f]{8})\.[0-9a-f]{8}\.tmp")
    try:
        names = os.listdir(folder)
    except OSError:
        return
    here = _host_tag()
    for entry in names:
        found = pattern.fullmatch(entry)
        if found is None or found.group(2) != here or owner_alive(int(found.group(1))):
            continue
        for suffix in ("", "-journal"):  # journal_mode is OFF, but an older one may be there
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, entry + suffix))


# The files SQLite keeps beside a store: writing an archive over one destroys the store.
_COMPANIONS = ("", "-wal", "-shm", "-journal")


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return os.path.realpath(a) == os.path.realpath(b)


def _refuse_the_store_itself(source: str, dest: str) -> None:
    """Refuse ``dest`` if it is the store ``source`` or one of its companion files, under
    any name: the same path, a symlink or a hard link (same device and inode)."""
    for suffix in _COMPANIONS:
        if _same_file(dest, os.path.abspath(source) + suffix):
            raise StoreError(
                f"cannot export to {dest!r}: it is the store {source!r} the runs are read from"
                f"{' (its ' + suffix[1:] + ' file)' if suffix else ''}, which the export would "
                "destroy; write the archive to another file.",
                dest,
            )


def _build(
    source: str,
    tmp: str,
    dest: str,
    picked: list[tuple[str, int]],
    stop: threading.Event | None,
) -> dict[str, Any]:
    try:
        conn = sqlite3.connect(sqlite_uri(tmp, "rwc"), isolation_level=None, uri=True)
    except SQLITE_FAILURES as exc:
        raise _output_error(exc, dest) from exc
    interruptible(conn, stop)
    try:
        with sqlite_errors(source, "read"):
            conn.execute("ATTACH DATABASE ? AS src", (ro_uri(source),))
        try:
            conn.execute("PRAGMA src.busy_timeout = 5000")
            # A first look, only to choose the archive's page size.
            retry_busy(lambda: conn.execute("BEGIN").close(), source)
            _pick_runs(conn, source, picked)
            payload = conn.execute(
                "SELECT coalesce(sum(size), 0) FROM src.blobs WHERE sha IN ("
                "SELECT sha FROM src.artifacts WHERE run_id IN (SELECT id FROM temp.picked) "
                "UNION SELECT sha FROM src.run_params WHERE run_id IN (SELECT id FROM "
                f"temp.picked){_card_shas(conn)})"
            ).fetchone()[0]
            conn.execute("COMMIT")
            page = _SMALL_PAGE if payload <= _SMALL_ARCHIVE else PAGE_SIZE
            conn.execute(f"PRAGMA main.page_size = {page}")
            conn.execute("PRAGMA main.journal_mode = OFF")
            conn.execute("PRAGMA main.synchronous = OFF")
            conn.execute(f"PRAGMA main.application_id = {APPLICATION_ID}")
            # One transaction from here to the commit: every row copied, and the runs the
            # manifest lists, come from one snapshot of the source, whatever a gc or a run
            # commits meanwhile (a run deleted since the first look is reported missing).
            retry_busy(lambda: conn.execute("BEGIN IMMEDIATE").close(), source)
            try:
                rows = _pick_runs(conn, source, picked)
                migrate(conn, 0)
                _copy(conn, source)
                manifest = _manifest(conn, source, rows)
                conn.execute(
                    "INSERT INTO store_info (key, value) VALUES (?, ?)",
                    (ARCHIVE_KEY, json.dumps(manifest, sort_keys=True)),
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except SQLITE_FAILURES as exc:
            if _is_output_failure(exc):
                raise _output_error(exc, dest) from exc
            raise store_error(exc, source, "read") from exc
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            with contextlib.suppress(sqlite3.Error):
                conn.execute("DETACH DATABASE src")
    finally:
        conn.close()
    return manifest


_PICK_COLUMNS = (
    "id", "flow", "status", "created_at", "uid", "status", "owner_pid", "owner_host",
    "heartbeat_at",
)  # fmt: skip


def _pick_runs(
    conn: sqlite3.Connection, source: str, picked: list[tuple[str, int]]
) -> list[tuple[Any, ...]]:
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS picked (id INTEGER PRIMARY KEY)")
    conn.execute("DELETE FROM temp.picked")
    found: list[tuple[Any, ...]] = []
    for flow, run_id in picked:
        row = conn.execute(
            f"SELECT {', '.join(_PICK_COLUMNS)} FROM src.runs WHERE flow = ? AND id = ?",
            (flow, run_id),
        ).fetchone()
        if row is None:
            raise StoreError(
                f"cannot export run {flow}/{run_id}: the store {source!r} has no such run; "
                "list its runs with `asyncflow runs`.",
                source,
            )
        problem = row_problem("runs", _PICK_COLUMNS, row)
        if problem is not None:
            raise record_error(TypeError(problem), source)
        if _live_reason(row[5:]) is not None:
            raise StoreError(
                f"cannot export run {flow}/{run_id}: it is still running; export it once it "
                "has finished (or cancel it first).",
                source,
            )
        conn.execute("INSERT OR IGNORE INTO temp.picked (id) VALUES (?)", (row[0],))
        found.append(row[:5])
    return found


_COPIES = (
    "INSERT INTO main.runs (id, flow, status, created_at, finished_at, origin_run_id, graph, "
    "error, owner_pid, owner_host, heartbeat_at, uid, trusted, source_sha, imported) "
    "SELECT id, flow, status, created_at, finished_at, origin_run_id, graph, error, owner_pid, "
    "owner_host, heartbeat_at, uid, 0, source_sha, imported FROM src.runs "
    "WHERE id IN (SELECT id FROM temp.picked) ORDER BY id",
    "INSERT INTO main.run_tags SELECT run_id, tag FROM src.run_tags "
    "WHERE run_id IN (SELECT id FROM temp.picked)",
    "INSERT INTO main.run_params SELECT run_id, name, sha FROM src.run_params "
    "WHERE run_id IN (SELECT id FROM temp.picked)",
    "INSERT INTO main.tasks (run_id, id, step, path, status, started_at, finished_at, stdout, "
    "stderr, exception, traceback, attempt, origin_task_id) SELECT run_id, id, step, path, "
    "status, started_at, finished_at, stdout, stderr, exception, traceback, attempt, "
    "origin_task_id FROM src.tasks WHERE run_id IN (SELECT id FROM temp.picked)",
    "INSERT INTO main.attempts SELECT run_id, task_id, attempt, status, started_at, "
    "finished_at, stdout, stderr, exception, traceback FROM src.attempts "
    "WHERE run_id IN (SELECT id FROM temp.picked)",
    "INSERT INTO main.artifacts SELECT run_id, task_id, name, sha FROM src.artifacts "
    "WHERE run_id IN (SELECT id FROM temp.picked)",
    "INSERT INTO main.events SELECT run_id, seq, data FROM src.events "
    "WHERE run_id IN (SELECT id FROM temp.picked)",
    "INSERT INTO main.cards SELECT run_id, task_id, idx, card_id, type, sha FROM src.cards "
    "WHERE run_id IN (SELECT id FROM temp.picked)",
    "CREATE TEMP TABLE wanted (sha BLOB PRIMARY KEY) WITHOUT ROWID",
    "INSERT OR IGNORE INTO temp.wanted SELECT sha FROM main.artifacts "
    "UNION SELECT sha FROM main.cards "
    "UNION SELECT sha FROM main.run_params "
    "UNION SELECT source_sha FROM main.runs WHERE source_sha IS NOT NULL",
    # Never the mac: signatures stay with the store of the user who made them.
    "INSERT INTO main.blobs (sha, encoding, meta, size, data, nchunks, mac) "
    "SELECT sha, encoding, meta, size, data, nchunks, NULL FROM src.blobs "
    "WHERE sha IN (SELECT sha FROM temp.wanted) ORDER BY sha",
    "INSERT INTO main.blob_chunks (sha, idx, data) SELECT c.sha, c.idx, c.data "
    "FROM main.blobs AS b JOIN src.blob_chunks AS c ON c.sha = b.sha AND c.idx < b.nchunks "
    "WHERE b.nchunks > 0",
)


def _card_shas(conn: sqlite3.Connection) -> str:
    # The picked runs' card blobs, for a source that has cards (an older archive has none).
    if "cards" in missing_tables(conn, "src"):
        return ""
    return " UNION SELECT sha FROM src.cards WHERE run_id IN (SELECT id FROM temp.picked)"


def _copy(conn: sqlite3.Connection, source: str) -> None:
    # A source of an older schema (an archive: a store is upgraded when opened) lacks the
    # tables added since: its runs have no rows there.
    lacking = missing_tables(conn, "src")
    for sql in _COPIES:
        if not any(f"src.{table} " in sql for table in lacking):
            conn.execute(sql)
    wanted = conn.execute("SELECT count(*) FROM temp.wanted").fetchone()[0]
    have = conn.execute("SELECT count(*) FROM main.blobs").fetchone()[0]
    if have != wanted:
        raise StoreError(
            f"cannot export: {wanted - have} value(s) the runs refer to are missing from the "
            f"store {source!r}; the store is damaged (restore it from a copy).",
            source,
        )


def _manifest(conn: sqlite3.Connection, source: str, rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    blobs, payload = conn.execute(
        "SELECT count(*), coalesce(sum(size), 0) FROM main.blobs"
    ).fetchone()
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = ""
    manifest: dict[str, Any] = {
        "format": ARCHIVE_FORMAT,
        "asyncflow_version": __version__,
        "schema_version": SCHEMA_VERSION,
        "exported_at": time.time(),
        "exported_by": {"host": host_name(), "user": user, "store": os.path.abspath(source)},
        "runs": [
            {"flow": r[1], "id": r[0], "status": r[2], "created_at": r[3], "uid": r[4]}
            for r in sorted(rows, key=lambda r: (r[1], r[0]))
        ],
        "blobs": int(blobs),
        "payload_bytes": int(payload),
    }
    manifest["digest"] = content_digest(conn, manifest=manifest)
    return manifest
