"""What a run archive must be, beyond its digest: the checks that keep a hostile or damaged
archive from reaching the client as anything but a clear error.

A digest proves that the records are the ones the manifest was made for, not that whoever
made them played fair: anyone can edit an archive and recompute it. So before its records are
trusted, an archive must also have exactly the schema asyncflow writes (no view that never
ends, no trigger, no extra table), every record must have the kind of value asyncflow writes
(a number where a time is read, text where a name is, JSON where a graph is), every blob row
must agree with the bytes stored for it (so no size or chunk count is a lie, and no buffer is
allocated for bytes that are not there), and the manifest's own fields must have their types
and match the file. Each function returns what is wrong, in words for
``_archive._damaged``, or None. All of them only read; they run in the caller's transaction.
"""

from __future__ import annotations

import functools
import math
import sqlite3
from datetime import UTC, datetime
from typing import Any

from .._codecs import numpy_meta_problem
from ._blobs import CHUNK_SIZE
from ._events import decode_chunk
from ._records import COLUMN_KINDS, TIME, TIME_RANGE, parse_json
from ._schema import SCHEMA_VERSION, migrate

__all__ = [
    "MAX_CARDS",
    "blob_problem",
    "cards_problem",
    "events_problem",
    "manifest_problem",
    "numpy_problem",
    "record_problem",
    "schema_problem",
    "stored_bytes_problem",
    "totals_problem",
]

# --- the manifest ----------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return type(value) is int


def _is_time(value: object) -> bool:
    if type(value) not in (int, float) or not math.isfinite(value):  # type: ignore[arg-type]
        return False
    try:
        datetime.fromtimestamp(value, tz=UTC)  # type: ignore[arg-type]
    except (OverflowError, OSError, ValueError):
        return False
    return True


def _is_run(entry: object) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("flow"), str)
        and _is_int(entry.get("id"))
        and isinstance(entry.get("status"), str)
        and type(entry.get("created_at")) in (int, float)
        and isinstance(entry.get("uid"), str | None)
    )


def manifest_problem(manifest: dict[str, Any], schema_version: int) -> str | None:
    """What is wrong with the manifest's fields, if anything (``format``, ``digest`` and
    ``runs`` being present is checked before).

    :param schema_version: the schema version of the file (``PRAGMA user_version``).
    """
    by = manifest.get("exported_by")
    who = ("host", "user", "store")

    def count(name: str) -> bool:
        return _is_int(manifest.get(name)) and manifest[name] >= 0

    checks = (
        ("asyncflow_version", isinstance(manifest.get("asyncflow_version"), str)),
        ("schema_version", _is_int(manifest.get("schema_version"))),
        ("schema_version", manifest.get("schema_version") == schema_version),
        ("exported_at", _is_time(manifest.get("exported_at"))),
        ("exported_by", isinstance(by, dict) and all(isinstance(by.get(k), str) for k in who)),
        ("runs", all(_is_run(entry) for entry in manifest["runs"])),
        ("blobs", count("blobs")),
        ("payload_bytes", count("payload_bytes")),
    )
    for name, ok in checks:
        if not ok:
            return f"its manifest field {name!r} is missing, invalid or does not match the file"
    return None


def totals_problem(conn: sqlite3.Connection, manifest: dict[str, Any]) -> str | None:
    """Whether the manifest's count of values and of their bytes match the file's."""
    blobs, payload = conn.execute("SELECT count(*), coalesce(sum(size), 0) FROM blobs").fetchone()
    if manifest["blobs"] != blobs:
        return "its manifest field 'blobs' is missing, invalid or does not match the file"
    if manifest["payload_bytes"] != payload:
        return "its manifest field 'payload_bytes' is missing, invalid or does not match the file"
    return None


# --- the schema ------------------------------------------------------------------------------


def _shape(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    """The schema as structure (tables, columns, indexes), not as SQL text: the text of an
    altered table may differ between SQLite versions, the structure may not."""
    objects = conn.execute(
        "SELECT type, name, tbl_name FROM sqlite_master WHERE name != 'sqlite_sequence' "
        "AND name NOT LIKE 'sqlite_autoindex_%' ORDER BY type, name"
    ).fetchall()
    shape: list[tuple[Any, ...]] = [tuple(o) for o in objects]
    for kind, name, _ in objects:
        if kind == "table":
            shape.append(("columns", name, *conn.execute(f'PRAGMA table_xinfo("{name}")')))
            shape.append(("list", name, *conn.execute(f'PRAGMA table_list("{name}")')))
            for index in conn.execute(f'PRAGMA index_list("{name}")').fetchall():
                keys = conn.execute(f'PRAGMA index_xinfo("{index[1]}")').fetchall()
                shape.append(("index", name, *index[1:], *keys))
    return shape


@functools.cache
def _expected_shape(version: int) -> tuple[tuple[Any, ...], ...]:
    # A constant of this asyncflow and SQLite, worked out once (8 ms) on first use.
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        migrate(conn, 0, until=version)
        return tuple(_shape(conn))
    finally:
        conn.close()


def schema_problem(conn: sqlite3.Connection, version: int = SCHEMA_VERSION) -> str | None:
    """Whether the file's schema is exactly the one asyncflow writes for schema ``version``
    (the objects' names in the message, when it is not)."""
    found, expected = tuple(_shape(conn)), _expected_shape(version)
    if found == expected:
        return None
    # Table names come from the file itself: the message shows them quoted, as data.
    extra = sorted({repr(s[1]) for s in found if s not in expected})
    missing = sorted({repr(s[1]) for s in expected if s not in found})
    parts = []
    if extra:
        parts.append("unknown or changed " + ", ".join(extra[:5]))
    if missing:
        parts.append("missing " + ", ".join(missing[:5]))
    return "its tables are not the ones asyncflow writes (" + "; ".join(parts) + ")"


# --- records ---------------------------------------------------------------------------------

# The kinds of value asyncflow writes into each column of an archive (see ``_records``).
_KINDS = COLUMN_KINDS
_TIME = TIME
_TIME_RANGE = TIME_RANGE


def _bad(column: str, kinds: tuple[str, ...], null: bool) -> str:
    allowed = [*kinds, "null"] if null else list(kinds)
    if kinds == _TIME:
        ok = (
            f"(typeof({column}) IN ('integer', 'real') AND {column} BETWEEN "
            f"{_TIME_RANGE[0]} AND {_TIME_RANGE[1]})"
        )
        return f"NOT ({ok}{' OR ' + column + ' IS NULL' if null else ''})"
    marks = ", ".join(f"'{k}'" for k in allowed)
    return f"typeof({column}) NOT IN ({marks})"


def record_problem(conn: sqlite3.Connection) -> str | None:
    """Whether every record holds the kind of value asyncflow writes there (typeof() reads
    no blob's content), and every run's graph and provenance is a JSON object."""
    for table, columns in _KINDS.items():
        cases = " ".join(
            f"WHEN {_bad(name, kinds, null)} THEN '{name}: ' || typeof({name})"
            for name, kinds, null in columns
        )
        row = conn.execute(
            f"SELECT bad FROM (SELECT CASE {cases} END AS bad FROM {table}) "
            "WHERE bad IS NOT NULL LIMIT 1"
        ).fetchone()
        if row is not None:
            return f"a record of table {table} holds a value asyncflow never writes ({row[0]})"
    for run_id, graph, imported in conn.execute("SELECT id, graph, imported FROM runs"):
        for column, text in (("graph", graph), ("imported", imported)):
            if text is None:
                continue
            try:
                found = parse_json(text)
            except ValueError:
                found = None
            if not isinstance(found, dict):
                return (
                    f"a record of table runs holds a value asyncflow never writes "
                    f"({column} of run {run_id}: not a JSON object)"
                )
    return None


def events_problem(conn: sqlite3.Connection) -> str | None:
    """Whether every events row decodes to events asyncflow writes, each run's in one
    increasing sequence (rows neither overlap nor repeat), for a run of the archive. Reads
    every row a run at a time (they are small: a few dozen bytes per event)."""
    cur = conn.execute(
        "SELECT e.run_id, e.seq, e.data, EXISTS (SELECT 1 FROM runs WHERE id = e.run_id) "
        "FROM events AS e ORDER BY e.run_id, e.seq"
    )
    run, last = None, 0
    while rows := cur.fetchmany(256):
        for run_id, seq, data, known in rows:
            if run_id != run:
                run, last = run_id, 0
            try:
                if not known:
                    raise ValueError(f"events of run {run_id}, which the archive does not hold")
                items = decode_chunk(seq, data)
                if items[0][0] <= last:
                    raise ValueError(f"rows of run {run_id} overlap at seq {items[0][0]}")
            except ValueError as exc:
                return f"its events are not ones asyncflow writes ({exc})"
            last = items[-1][0]
    return None


# --- cards ----------------------------------------------------------------------------------

# Cards of one task at most (one per @card of its step); longer card ids and types are refused.
MAX_CARDS = 256
_MAX_CARD_NAME = 200


def cards_problem(conn: sqlite3.Connection) -> str | None:
    """Whether every card row is one asyncflow writes: of a task of the archive, at an index
    below :data:`MAX_CARDS`, with a short id and type, naming a msgpack blob (its components,
    see ``_spec/_card_form``; a card never names a pickle). A card naming no blob at all is
    caught with the other missing values."""
    row = conn.execute(
        "SELECT c.run_id, c.task_id, c.idx, CASE "
        f"WHEN c.idx < 0 OR c.idx >= {MAX_CARDS} THEN 'an index out of range' "
        f"WHEN length(c.type) > {_MAX_CARD_NAME} OR length(c.card_id) > {_MAX_CARD_NAME} "
        "THEN 'an id or type too long' "
        "WHEN NOT EXISTS (SELECT 1 FROM tasks AS t WHERE t.run_id = c.run_id AND t.id = c.task_id) "
        "THEN 'no task' "
        "WHEN EXISTS (SELECT 1 FROM blobs AS b WHERE b.sha = c.sha AND b.encoding != 'msgpack') "
        "THEN 'a value that is not msgpack' END AS bad "
        "FROM cards AS c WHERE bad IS NOT NULL LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    run_id, task_id, idx, bad = row
    return f"card {idx} of task {run_id}/{task_id} is not one asyncflow writes ({bad})"


# --- blob rows -------------------------------------------------------------------------------


def blob_problem(conn: sqlite3.Connection) -> bytes | None:
    """The sha of a blob whose row disagrees with the bytes stored for it (inline bytes of
    another length than its size; chunk rows other than 0..nchunks-1, or of another total
    length), or None. ``length()`` reads no blob's content, so this costs little."""
    row = conn.execute(
        "SELECT sha FROM blobs WHERE NOT ("
        "(nchunks = 0 AND coalesce(length(data), 0) = size) OR "
        f"(nchunks > 0 AND data IS NULL AND size > (nchunks - 1) * {CHUNK_SIZE} "
        f"AND size <= nchunks * {CHUNK_SIZE})) LIMIT 1"
    ).fetchone()
    if row is None:
        row = conn.execute(
            "SELECT b.sha FROM blobs AS b LEFT JOIN (SELECT sha, count(*) AS n, "
            "sum(length(data)) AS total, min(idx) AS lo, max(idx) AS hi FROM blob_chunks "
            "GROUP BY sha) AS c ON c.sha = b.sha WHERE b.nchunks > 0 AND (c.n IS NULL OR "
            "c.n != b.nchunks OR c.total != b.size OR c.lo != 0 OR c.hi != b.nchunks - 1) "
            "LIMIT 1"
        ).fetchone()
    return None if row is None else bytes(row[0])


# --- what reading may allocate ----------------------------------------------------------------


def stored_bytes_problem(conn: sqlite3.Connection, schema: str = "main") -> str | None:
    """Whether the file declares more payload than it can hold. Every byte of every value
    lies in a page of its own in an intact file, so the sizes of the blob rows, and the
    lengths of the chunk rows, each add up to less than the file. A damaged or forged
    b-tree whose chunk rows share their pages (one stored chunk read back 400 times)
    declares more: reading it would allocate far beyond what the file holds."""
    pages = conn.execute(f"PRAGMA {schema}.page_count").fetchone()[0]
    page_size = conn.execute(f"PRAGMA {schema}.page_size").fetchone()[0]
    room = int(pages) * int(page_size)
    declared = conn.execute(f"SELECT coalesce(sum(size), 0) FROM {schema}.blobs").fetchone()[0]
    chunked = conn.execute(
        f"SELECT coalesce(sum(length(data)), 0) FROM {schema}.blob_chunks"
    ).fetchone()[0]
    for what, total in (("its values declare", declared), ("its chunk rows hold", chunked)):
        if not isinstance(total, int) or total > room:
            return f"{what} {total} bytes, more than the {room} bytes of the whole file"
    return None


def numpy_problem(conn: sqlite3.Connection, schema: str = "main") -> tuple[bytes, str] | None:
    """The first numpy blob whose meta cannot describe its size (dtype, shape and order
    against the bytes declared, see :func:`~asyncflow._codecs.numpy_meta_problem`) and
    why, or None. Reads every numpy blob's meta (a few dozen bytes each), no payload."""
    cur = conn.execute(f"SELECT sha, meta, size FROM {schema}.blobs WHERE encoding = 'numpy'")
    while rows := cur.fetchmany(512):
        for sha, meta, size in rows:
            blob_meta = bytes(meta) if isinstance(meta, bytes | memoryview) else None
            problem = numpy_meta_problem(blob_meta, size if isinstance(size, int) else -1)
            if problem is not None:
                return bytes(sha), problem
    return None
