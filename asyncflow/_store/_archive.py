"""Run archives: export chosen runs of a store into one file, and import them into a store.

An archive is a store whose ``store_info`` has a row ``archive`` holding the manifest (JSON):
what wrote it, when and where, which runs, how many blobs and payload bytes, and a digest over
the content (``_manifest``, which also holds every check of an archive). Export copies rows
and blobs with ``INSERT ... SELECT`` from the attached source, so no value passes through
Python memory; blob macs are never copied and runs arrive untrusted (see ``_trust``). An
archive is read-only: ``open_writer`` refuses it.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .._errors import StoreError
from .._version import __version__
from ._db import (
    ARCHIVE_KEY,
    PAGE_SIZE,
    SQLITE_FAILURES,
    interruptible,
    open_reader,
    retry_busy,
    sqlite_errors,
    store_error,
    write_once,
)
from ._lease import crashed_reason, host_name
from ._manifest import (
    ARCHIVE_FORMAT,
    content_digest,
    open_archive,
    verify_blobs,
    verify_records,
)
from ._schema import APPLICATION_ID, SCHEMA_VERSION, migrate

__all__ = [
    "ImportedRun",
    "export_archive",
    "import_archive",
]

# Archives whose payload is at most this big use 4 KiB pages: a small bug-report archive then
# takes kilobytes, not a 64 KiB page per table and index.
_SMALL_ARCHIVE = 16 << 20
_SMALL_PAGE = 4096
_RUN_COLUMNS = (
    "flow, status, created_at, finished_at, origin_run_id, graph, error, owner_pid, "
    "owner_host, heartbeat_at, uid, source_sha"
)


# --- export ---------------------------------------------------------------------------------


def _uri(path: str) -> str:
    return "file:" + os.path.abspath(path).replace("?", "%3f").replace("#", "%23") + "?mode=ro"


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
    tmp = f"{dest}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        manifest = _build(source, tmp, picked, stop)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, dest)
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
    source: str, tmp: str, picked: list[tuple[str, int]], stop: threading.Event | None
) -> dict[str, Any]:
    conn = sqlite3.connect(tmp, isolation_level=None, uri=False)
    interruptible(conn, stop)
    try:
        with sqlite_errors(source, "read"):
            conn.execute("ATTACH DATABASE ? AS src", (_uri(source),))
        try:
            conn.execute("PRAGMA src.busy_timeout = 5000")
            # A first look, only to choose the archive's page size.
            retry_busy(lambda: conn.execute("BEGIN").close(), source)
            _pick_runs(conn, source, picked)
            payload = conn.execute(
                "SELECT coalesce(sum(size), 0) FROM src.blobs WHERE sha IN ("
                "SELECT sha FROM src.artifacts WHERE run_id IN (SELECT id FROM temp.picked) "
                "UNION SELECT sha FROM src.run_params WHERE run_id IN (SELECT id FROM "
                "temp.picked))"
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
            raise store_error(exc, source, "read") from exc
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            with contextlib.suppress(sqlite3.Error):
                conn.execute("DETACH DATABASE src")
    finally:
        conn.close()
    return manifest


def _pick_runs(
    conn: sqlite3.Connection, source: str, picked: list[tuple[str, int]]
) -> list[tuple[Any, ...]]:
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS picked (id INTEGER PRIMARY KEY)")
    conn.execute("DELETE FROM temp.picked")
    found: list[tuple[Any, ...]] = []
    for flow, run_id in picked:
        row = conn.execute(
            "SELECT id, flow, status, created_at, uid, status, owner_pid, owner_host, "
            "heartbeat_at FROM src.runs WHERE flow = ? AND id = ?",
            (flow, run_id),
        ).fetchone()
        if row is None:
            raise StoreError(
                f"cannot export run {flow}/{run_id}: the store {source!r} has no such run; "
                "list its runs with `asyncflow runs`.",
                source,
            )
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
    "CREATE TEMP TABLE wanted (sha BLOB PRIMARY KEY) WITHOUT ROWID",
    "INSERT OR IGNORE INTO temp.wanted SELECT sha FROM main.artifacts "
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


def _copy(conn: sqlite3.Connection, source: str) -> None:
    for sql in _COPIES:
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


# --- import ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImportedRun:
    """One run of an archive as it ended up in the target store.

    :param flow: the flow's name.
    :param archive_id: its id in the archive (and the store it was exported from).
    :param id: its id in the target store.
    :param existed: True if the target already held this run (same uid): nothing was copied.
    """

    flow: str
    archive_id: int
    id: int
    existed: bool


def import_archive(
    archive: str,
    target: str,
    *,
    sign: Any = None,
    stop: threading.Event | None = None,
) -> list[ImportedRun]:
    """Copy every run of ``archive`` into the store ``target``, all or nothing. Blocking.

    Records and every blob's hash are verified first, in one read transaction that stays
    open (so the archive cannot change) until the copy commits. Runs get new ids in the
    target; a run the target already holds (same uid) is reported, not copied twice. Blobs
    the target has already are not copied again.

    :param sign: None, or a callable ``(conn, run_ids) -> None`` run inside the import's
        transaction to trust the new runs (see ``_signing``).
    :param stop: once set, the import is abandoned and rolled back.
    :raises StoreError: the archive is damaged or edited, a file cannot be used, or ``stop``
        was set.
    :raises StoreFormatError: the file is not an archive.
    """
    archive = os.path.abspath(archive)
    try:
        return _import(archive, target, sign, stop)
    except StoreError as exc:
        if stop is None or not stop.is_set():
            raise
        raise StoreError(
            f"the import of {archive!r} was interrupted (its caller was cancelled); the store "
            f"{target!r} is as it was.",
            target,
        ) from exc


def _import(
    archive: str, target: str, sign: Any, stop: threading.Event | None
) -> list[ImportedRun]:
    check = open_archive(archive)
    interruptible(check, stop)
    try:
        with sqlite_errors(archive, "read"):
            check.execute("BEGIN")
            manifest = verify_records(check, archive)
            runs = check.execute(
                f"SELECT id, {_RUN_COLUMNS}, imported FROM runs ORDER BY id"
            ).fetchall()
        # Hashing every value (sha256 releases the GIL) overlaps the copy (SQLite does too);
        # the copy commits only once every hash has matched.
        with ThreadPoolExecutor(1, thread_name_prefix="asyncflow-verify") as pool:
            hashed = pool.submit(_verify_blobs_of, check, archive)
            try:
                result = _copy_into(target, archive, runs, manifest, hashed, sign, stop)
            finally:
                hashed.cancel()
                with contextlib.suppress(BaseException):
                    hashed.result()
    finally:
        with contextlib.suppress(sqlite3.Error):
            if check.in_transaction:
                check.execute("ROLLBACK")
        check.close()
    return result


def _verify_blobs_of(check: sqlite3.Connection, archive: str) -> None:
    with sqlite_errors(archive, "read"):
        verify_blobs(check, archive)


def _copy_into(
    target: str,
    archive: str,
    runs: list[tuple[Any, ...]],
    manifest: dict[str, Any],
    hashed: Future[None],
    sign: Any,
    stop: threading.Event | None,
) -> list[ImportedRun]:
    def attach(conn: sqlite3.Connection) -> None:
        interruptible(conn, stop)
        with sqlite_errors(archive, "read"):
            conn.execute("ATTACH DATABASE ? AS arc", (_uri(archive),))
        # Read the archive through the page cache, not a memory map the size of it: the
        # copy passes each page once, and a map would count the whole file in our RSS.
        conn.execute("PRAGMA arc.mmap_size = 0")

    def body(conn: sqlite3.Connection) -> list[ImportedRun]:
        result = _copy_in(conn, runs, manifest, archive)
        hashed.result()  # raises (and so rolls back) if a value does not match
        new = [r.id for r in result if not r.existed]
        if sign is not None and new:
            sign(conn, new)
        return result

    return write_once(target, body, setup=attach)


def _copy_in(
    conn: sqlite3.Connection,
    runs: list[tuple[Any, ...]],
    manifest: dict[str, Any],
    archive: str,
) -> list[ImportedRun]:
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS idmap (old INTEGER PRIMARY KEY, new INTEGER)")
    conn.execute("DELETE FROM temp.idmap")
    out: list[ImportedRun] = []
    mapped: dict[int, int] = {}
    for row in runs:
        old, flow, uid = int(row[0]), str(row[1]), row[11]
        have = conn.execute("SELECT id FROM main.runs WHERE uid = ?", (uid,)).fetchone()
        if have is not None:
            out.append(ImportedRun(flow, old, int(have[0]), True))
            mapped[old] = int(have[0])
            continue
        provenance = {
            "archive": os.path.basename(archive),
            "digest": manifest.get("digest"),
            "exported_at": manifest.get("exported_at"),
            "exported_by": manifest.get("exported_by"),
            "run_id": old,
            "origin_run_id": row[5],
            "imported_at": time.time(),
            "earlier": row[13],
        }
        cur = conn.execute(
            f"INSERT INTO main.runs ({_RUN_COLUMNS}, trusted, imported) "
            "VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, 0, ?)",
            (*row[1:5], *row[6:13], json.dumps(provenance, sort_keys=True)),
        )
        new = cur.lastrowid
        assert new is not None
        mapped[old] = new
        conn.execute("INSERT INTO temp.idmap (old, new) VALUES (?, ?)", (old, new))
        out.append(ImportedRun(flow, old, new, False))
    for row in runs:
        origin = row[5]
        if origin is not None and int(row[0]) in mapped and int(origin) in mapped:
            conn.execute(
                "UPDATE main.runs SET origin_run_id = ? WHERE id = ? AND origin_run_id IS NULL",
                (mapped[int(origin)], mapped[int(row[0])]),
            )
    for sql in _IMPORTS:
        conn.execute(sql)
    return out


_IMPORTS = (
    "INSERT INTO main.run_tags SELECT m.new, t.tag FROM arc.run_tags AS t "
    "JOIN temp.idmap AS m ON m.old = t.run_id",
    "INSERT INTO main.run_params SELECT m.new, p.name, p.sha FROM arc.run_params AS p "
    "JOIN temp.idmap AS m ON m.old = p.run_id",
    "INSERT INTO main.tasks (run_id, id, step, path, status, started_at, finished_at, stdout, "
    "stderr, exception, traceback, attempt, origin_task_id) SELECT m.new, t.id, t.step, "
    "t.path, t.status, t.started_at, t.finished_at, t.stdout, t.stderr, t.exception, "
    "t.traceback, t.attempt, t.origin_task_id FROM arc.tasks AS t "
    "JOIN temp.idmap AS m ON m.old = t.run_id",
    "INSERT INTO main.attempts SELECT m.new, a.task_id, a.attempt, a.status, a.started_at, "
    "a.finished_at, a.stdout, a.stderr, a.exception, a.traceback FROM arc.attempts AS a "
    "JOIN temp.idmap AS m ON m.old = a.run_id",
    "INSERT INTO main.artifacts SELECT m.new, a.task_id, a.name, a.sha FROM arc.artifacts AS a "
    "JOIN temp.idmap AS m ON m.old = a.run_id",
    "CREATE TEMP TABLE IF NOT EXISTS fresh (sha BLOB PRIMARY KEY) WITHOUT ROWID",
    "DELETE FROM temp.fresh",
    "INSERT INTO temp.fresh SELECT sha FROM arc.blobs "
    "WHERE sha NOT IN (SELECT sha FROM main.blobs)",
    # No mac: an imported blob is this user's only once they trust it.
    "INSERT INTO main.blobs (sha, encoding, meta, size, data, nchunks, mac) "
    "SELECT b.sha, b.encoding, b.meta, b.size, b.data, b.nchunks, NULL FROM arc.blobs AS b "
    "WHERE b.sha IN (SELECT sha FROM temp.fresh) ORDER BY b.sha",
    "INSERT OR REPLACE INTO main.blob_chunks (sha, idx, data) SELECT c.sha, c.idx, c.data "
    "FROM arc.blobs AS b JOIN arc.blob_chunks AS c ON c.sha = b.sha AND c.idx < b.nchunks "
    "WHERE b.sha IN (SELECT sha FROM temp.fresh)",
)
