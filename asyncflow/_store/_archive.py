"""Run archives: export chosen runs of a store into one file, and import them into a store.

An archive is a store whose ``store_info`` has a row ``archive`` holding the manifest (JSON):
what wrote it, when and where, which runs, how many blobs and payload bytes, and a digest over
the content (``_manifest``, which also holds every check of an archive). Export lives in
``_export`` (re-exported here); import copies rows and blobs with ``INSERT ... SELECT`` from
the attached archive, so no value passes through Python memory; blob macs are never copied
and runs arrive untrusted (see ``_trust``). An archive is read-only: ``open_writer`` refuses
it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .._errors import StoreError
from ._db import interruptible, write_once
from ._export import RUN_COLUMNS as _RUN_COLUMNS
from ._export import export_archive
from ._export import ro_uri as _uri
from ._manifest import open_archive, verify_blobs, verify_records
from ._runids import insert_run
from ._schema import missing_tables
from ._sqlerrors import sqlite_errors

__all__ = [
    "ImportedRun",
    "export_archive",
    "import_archive",
]


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
    created = not os.path.exists(target)
    try:
        return _import(archive, target, sign, stop)
    except BaseException as exc:
        if created:  # a failed or cancelled import leaves no new, empty store behind
            _remove_if_empty(target)
        if not isinstance(exc, StoreError) or stop is None or not stop.is_set():
            raise
        raise StoreError(
            f"the import of {archive!r} was interrupted (its caller was cancelled); the store "
            f"{target!r} is as it was.",
            target,
        ) from exc


def _remove_if_empty(target: str) -> None:
    # The store this import created, if it still holds no run (another process may have
    # written one since): its file and the companions SQLite left beside it.
    try:
        conn = sqlite3.connect(f"{_uri(target)}", uri=True)
        try:
            if conn.execute("SELECT EXISTS (SELECT 1 FROM runs)").fetchone()[0]:
                return
        finally:
            conn.close()
    except sqlite3.Error:
        return  # not a store we can read: leave it
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(OSError):
            os.unlink(target + suffix)


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
        if stop is not None and stop.is_set():  # cancelled before the commit: roll back
            raise StoreError("stopped", target)
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
        # A new id, claimed clean as a run's (rows planted in the target for it go first).
        new = insert_run(
            conn,
            f"INSERT INTO main.runs ({_RUN_COLUMNS}, trusted, imported) "
            "VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, 0, ?)",
            (*row[1:5], *row[6:13], json.dumps(provenance, sort_keys=True)),
        )
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
    # An archive of an older schema lacks the tables added since: its runs have no rows there.
    lacking = missing_tables(conn, "arc")
    for sql in _IMPORTS:
        if not any(f"arc.{table} " in sql for table in lacking):
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
    "INSERT INTO main.events SELECT m.new, e.seq, e.data FROM arc.events AS e "
    "JOIN temp.idmap AS m ON m.old = e.run_id",
    "INSERT INTO main.cards SELECT m.new, c.task_id, c.idx, c.card_id, c.type, c.sha "
    "FROM arc.cards AS c JOIN temp.idmap AS m ON m.old = c.run_id",
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
