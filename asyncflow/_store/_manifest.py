"""The manifest of a run archive, its content digest, and every check of an archive's content.

The *content digest* is a sha256 over every field of the manifest but the digest, and every
record of every table in a fixed order, each blob represented by its row (sha, encoding,
meta, size, nchunks). A blob's payload is bound by its sha, which readers of an archive
recompute on every read and import recomputes for every blob before committing anything. So a
single changed byte anywhere that matters ends in a clear error rather than in different
data. Since anyone can recompute a digest, opening an archive also checks what it cannot
vouch for (``_archive_checks``): the schema, the kind of every record, blob sizes, the
manifest's fields.
"""

from __future__ import annotations

import json
import os
import sqlite3
from hashlib import sha256
from typing import Any

import msgpack

from .._errors import StoreError, StoreFormatError
from ._archive_checks import (
    blob_problem,
    cards_problem,
    events_problem,
    manifest_problem,
    numpy_problem,
    record_problem,
    schema_problem,
    stored_bytes_problem,
    totals_problem,
)
from ._blobs import RawBlob, stored_sha
from ._db import open_reader
from ._format import ARCHIVE_KEY, is_archive
from ._records import parse_json
from ._schema import SCHEMA_VERSION, tables_at
from ._sqlerrors import sqlite_errors
from ._trust import blob_sha

__all__ = [
    "ARCHIVE_FORMAT",
    "check_blob",
    "content_digest",
    "open_archive",
    "read_manifest",
    "verify_archive_file",
    "verify_blobs",
    "verify_records",
]

ARCHIVE_FORMAT = "asyncflow-archive/1"
# Tables in digest order, each with its ORDER BY; blobs without their payload (bound by sha).
_DIGEST_TABLES: tuple[tuple[str, str, str], ...] = (
    (
        "runs",
        "id, flow, status, created_at, finished_at, origin_run_id, graph, error, owner_pid, "
        "owner_host, heartbeat_at, uid, source_sha, imported",
        "id",
    ),
    ("run_tags", "run_id, tag", "run_id, tag"),
    ("run_params", "run_id, name, sha", "run_id, name"),
    (
        "tasks",
        "run_id, id, step, path, status, started_at, finished_at, stdout, stderr, exception, "
        "traceback, attempt, origin_task_id",
        "run_id, id",
    ),
    (
        "attempts",
        "run_id, task_id, attempt, status, started_at, finished_at, stdout, stderr, exception, "
        "traceback",
        "run_id, task_id, attempt",
    ),
    ("artifacts", "run_id, task_id, name, sha", "run_id, task_id, name"),
    ("blobs", "sha, encoding, meta, size, nchunks", "sha"),
    ("events", "run_id, seq, data", "run_id, seq"),
    ("cards", "run_id, task_id, idx, card_id, type, sha", "run_id, task_id, idx"),
)
# Tables whose structure a reader checks before trusting an archive's records (blob_chunks
# is left out: its pages are the bulk of the file, and every chunk is checked by its sha).
_CHECKED_TABLES = ("store_info", *(t[0] for t in _DIGEST_TABLES))


def _describe(path: str) -> str:
    return f"the archive {path!r}"


def _damaged(path: str, what: str) -> StoreError:
    return StoreError(
        f"{_describe(path)} is damaged or was changed after export: {what}; ask for a fresh "
        "copy of the archive (or export the runs again).",
        path,
    )


def _bomb(path: str, what: str) -> StoreFormatError:
    return StoreFormatError(
        f"{_describe(path)} is refused: {what}; reading it would allocate far more memory "
        "than the file holds. Ask for a fresh copy of the archive (or export the runs again).",
        path,
    )


# --- the manifest and the digest ------------------------------------------------------------


def content_digest(
    conn: sqlite3.Connection, schema: str = "main", manifest: dict[str, Any] | None = None
) -> str:
    """``sha256:<hex>`` over every record of the archive's tables (see the module doc) and
    every field of its manifest but the digest itself: ``manifest``, or else the one stored
    (so a changed byte in who exported it, or when, is caught as well)."""
    if manifest is None:
        row = conn.execute(
            f"SELECT value FROM {schema}.store_info WHERE key = ?", (ARCHIVE_KEY,)
        ).fetchone()
        try:
            stored = parse_json(row[0]) if row is not None else {}
        except ValueError:
            stored = {}
        manifest = stored if isinstance(stored, dict) else {}
    fields = {key: value for key, value in manifest.items() if key != "digest"}
    digest = sha256(ARCHIVE_FORMAT.encode())
    digest.update(json.dumps(fields, sort_keys=True).encode())
    pack = msgpack.Packer(use_bin_type=True)
    # An archive of an older schema has no rows of the tables added since: their names are
    # not part of its digest (as they were not when it was written).
    version = manifest.get("schema_version")
    known = type(version) is int and 0 < version <= SCHEMA_VERSION
    held = tables_at(version if known else SCHEMA_VERSION)
    for table, columns, order in _DIGEST_TABLES:
        if table not in held:
            continue
        digest.update(pack.pack(table))
        cur = conn.execute(f"SELECT {columns} FROM {schema}.{table} ORDER BY {order}")
        while rows := cur.fetchmany(512):
            for row in rows:
                digest.update(pack.pack(list(row)))
    info = conn.execute(
        f"SELECT key, value FROM {schema}.store_info WHERE key != ? ORDER BY key", (ARCHIVE_KEY,)
    ).fetchall()
    digest.update(pack.pack([list(r) for r in info]))
    return "sha256:" + digest.hexdigest()


def _manifest_of(conn: sqlite3.Connection, path: str) -> dict[str, Any]:
    row = conn.execute("SELECT value FROM store_info WHERE key = ?", (ARCHIVE_KEY,)).fetchone()
    if row is None:
        raise StoreFormatError(
            f"{path!r} is an asyncflow store, not a run archive: it has no manifest; read it "
            "as a store (--store PATH, or store=PATH), or, to move runs out of it, export them "
            "with `asyncflow export` (or run.export(path)).",
            path,
        )
    try:
        manifest = parse_json(row[0])
    except ValueError as exc:  # also nested too deep for Python to build
        raise _damaged(path, "its manifest is not valid JSON") from exc
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != ARCHIVE_FORMAT
        or not isinstance(manifest.get("digest"), str)
        or not isinstance(manifest.get("runs"), list)
    ):
        raise _damaged(path, "its manifest lacks the format, digest or runs fields")
    problem = manifest_problem(manifest, conn.execute("PRAGMA user_version").fetchone()[0])
    if problem is not None:
        raise _damaged(path, problem)
    return manifest


def read_manifest(conn: sqlite3.Connection, path: str) -> dict[str, Any]:
    """The manifest of the archive open on ``conn`` (the caller holds a read transaction).

    :raises StoreFormatError: the file is a store, not an archive.
    :raises StoreError: the manifest is unreadable.
    """
    with sqlite_errors(path, "read"):
        return _manifest_of(conn, path)


def verify_records(conn: sqlite3.Connection, path: str) -> dict[str, Any]:
    """Check an archive's structure and records against its manifest; return the manifest.

    Runs inside the caller's read transaction. Blob payloads are not read here: each one is
    checked against its sha when read (:func:`check_blob`) or imported.

    :raises StoreError: the archive is damaged or was edited (the message says how).
    """
    with sqlite_errors(path, "read"):
        manifest = _manifest_of(conn, path)
        # The file's own version, which its manifest names (checked by _manifest_of).
        version = int(manifest["schema_version"])
        for table in (t for t in _CHECKED_TABLES if t in tables_at(version)):
            problems = [r[0] for r in conn.execute(f"PRAGMA integrity_check({table})")]
            if problems != ["ok"]:
                raise _damaged(path, f"SQLite finds table {table} broken ({problems[0]})")
        # Before any query that reads every record: a view in a table's place could make
        # one never end.
        problem = (
            schema_problem(conn, version)
            or record_problem(conn)
            or events_problem(conn)
            or cards_problem(conn)
        )
        if problem is not None:
            raise _damaged(path, problem)
        listed = sorted(
            (str(r.get("flow")), r.get("id")) for r in manifest["runs"] if isinstance(r, dict)
        )
        stored = sorted(
            (str(f), i) for f, i in conn.execute("SELECT flow, id FROM runs").fetchall()
        )
        if listed != stored:
            raise _damaged(path, "its runs are not the ones its manifest lists")
        found = content_digest(conn, manifest=manifest)
        if found != manifest["digest"]:
            raise _damaged(path, "its records do not match the digest in its manifest")
        dangling = conn.execute(
            "SELECT count(*) FROM (SELECT sha FROM artifacts UNION SELECT sha FROM run_params "
            "UNION SELECT sha FROM cards "
            "UNION SELECT source_sha FROM runs WHERE source_sha IS NOT NULL) AS r "
            "WHERE r.sha NOT IN (SELECT sha FROM blobs)"
        ).fetchone()[0]
        if dangling:
            raise _damaged(path, f"{dangling} value(s) its runs refer to are missing")
        bad = blob_problem(conn)
        if bad is not None:
            raise _damaged(path, f"value {bad.hex()[:16]}... has a bad size")
        problem = stored_bytes_problem(conn)
        if problem is not None:
            raise _bomb(path, problem)
        numpy = numpy_problem(conn)
        if numpy is not None:
            raise _bomb(path, f"value {numpy[0].hex()[:16]}...: {numpy[1]}")
        problem = totals_problem(conn, manifest)
        if problem is not None:
            raise _damaged(path, problem)
    return manifest


def check_blob(raw: RawBlob, path: str, *, archive: bool = True) -> None:
    """Raise unless ``raw``'s bytes hash to its sha (every blob read from an archive, and
    the small ones read from a store).

    :param archive: whether ``path`` is an archive (else a store), for the message.
    :raises StoreError: the bytes were changed or damaged.
    """
    if blob_sha(raw.encoding, raw.meta, raw.payload) == raw.sha:
        return
    what = f"the bytes of value {raw.sha.hex()[:16]}... do not match its hash"
    if archive:
        raise _damaged(path, what)
    raise StoreError(
        f"{what} in the store file {path!r}; the store is damaged: restore it from a copy or "
        "re-run the flow.",
        path,
    )


def verify_blobs(conn: sqlite3.Connection, path: str) -> tuple[int, int]:
    """Hash every blob of the archive, a row at a time; (blob count, payload bytes)."""
    count = total = 0
    rows = conn.execute("SELECT sha, encoding, meta, size, nchunks FROM main.blobs").fetchall()
    for sha, encoding, meta, size, nchunks in rows:
        count += 1
        if not isinstance(size, int) or not isinstance(nchunks, int) or size < 0:
            raise _damaged(path, f"value {bytes(sha).hex()[:16]}... has a bad size")
        meta = None if meta is None else bytes(meta)
        if stored_sha(conn, sha, str(encoding), meta, size, nchunks) != bytes(sha):
            raise _damaged(path, f"value {bytes(sha).hex()[:16]}... does not match its hash")
        total += size
    return count, total


def open_archive(path: str) -> sqlite3.Connection:
    """Open a file that must be a run archive, read-only.

    :raises StoreError: no such file, or it cannot be read.
    :raises StoreFormatError: not an asyncflow file, a store rather than an archive, or newer.
    """
    if not os.path.lexists(path):
        # open_reader would suggest running a flow there: wrong advice for an archive.
        raise StoreError(
            f"there is no archive at {path!r}; check the path (an archive is the file that "
            "`asyncflow export` or run.export(path) wrote).",
            path,
        )
    conn = open_reader(path)
    try:
        with sqlite_errors(path, "read"):
            if not is_archive(conn):
                _manifest_of(conn, path)  # raises the "a store, not an archive" error
    except BaseException:
        conn.close()
        raise
    return conn


def verify_archive_file(path: str) -> dict[str, Any]:
    """Open ``path`` as an archive and check it completely (records and every blob).

    :returns: the manifest.
    :raises StoreError: damaged or edited; :raises StoreFormatError: not an archive.
    """
    conn = open_archive(path)
    try:
        with sqlite_errors(path, "read"):
            conn.execute("BEGIN")
            manifest = verify_records(conn, path)
            verify_blobs(conn, path)
            conn.execute("ROLLBACK")
    finally:
        conn.close()
    return manifest
