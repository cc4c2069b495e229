"""Content-addressed blobs: inline rows for small values, 1 MiB chunk rows for large ones.

A blob is keyed by the sha256 the codec computed over (encoding, meta, payload). Chunking
keeps every row far below SQLite's 1 GB limit, so values of any size work. Reading blobs back is a
read plan in ``_queries`` (``blob``/``blobs``), shared by the runtime and the client.

A store file may have been prepared by someone else, so a row already stored under the sha of
a value being written is never taken on trust: :func:`settle_blobs` keeps it only if its
stored bytes hash to that sha, and otherwise replaces it, in the writer's transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._codecs import Encoded, content_hasher

if TYPE_CHECKING:
    from .._codecs import OwnedBuffer

__all__ = [
    "CHUNK_SIZE",
    "INLINE_LIMIT",
    "RawBlob",
    "insert_blob",
    "insert_new_blob",
    "settle_blobs",
    "stored_sha",
]

CHUNK_SIZE = 1 << 20
INLINE_LIMIT = CHUNK_SIZE

INSERT_INLINE = (
    "INSERT INTO blobs (sha, encoding, meta, size, data, nchunks) VALUES (?, ?, ?, ?, ?, 0)"
)
# Shas per lookup of existing rows (well under SQLite's limit on bound variables).
_LOOKUP_BATCH = 500


@dataclass(frozen=True, slots=True)
class RawBlob:
    """A blob's stored form, before decoding. ``payload`` is bytes or a private buffer
    (from :func:`~asyncflow._codecs.payload_buffer`) that decoding may take over. ``mac`` is
    the row's signature (``blobs.mac``, see ``_trust``); None when unsigned or not read.

    ``vouched`` is True only for the object handed to one reader whose payload either never
    left this process (a blob still pending in memory) or was just checked, signature and
    hash, as it was read (``Store.read_raw_many(..., check=True)``). It speaks of this
    object's bytes only and is never cached: every other read is checked again.
    """

    sha: bytes
    encoding: str
    meta: bytes | None
    payload: bytes | OwnedBuffer
    mac: bytes | None = None
    vouched: bool = False

    @property
    def size(self) -> int:
        """Payload length in bytes."""
        return len(self.payload)


def insert_blob(conn: sqlite3.Connection, enc: Encoded) -> None:
    """Store ``enc``: keep an existing row with its sha only if its bytes hash to that sha,
    else replace it. The caller holds the transaction."""
    for fresh in settle_blobs(conn, [enc]):
        insert_new_blob(conn, fresh)


def insert_new_blob(conn: sqlite3.Connection, enc: Encoded) -> None:
    """Write ``enc``, whose sha has no row (see :func:`settle_blobs`). The caller holds the
    transaction."""
    size = enc.size
    if size <= INLINE_LIMIT:
        conn.execute(INSERT_INLINE, (enc.sha, enc.encoding, enc.meta, size, enc.payload))
        return
    view = memoryview(enc.payload).cast("B")
    nchunks = (size + CHUNK_SIZE - 1) // CHUNK_SIZE
    conn.executemany(
        "INSERT INTO blob_chunks (sha, idx, data) VALUES (?, ?, ?)",
        ((enc.sha, i, view[i * CHUNK_SIZE : (i + 1) * CHUNK_SIZE]) for i in range(nchunks)),
    )
    conn.execute(
        "INSERT INTO blobs (sha, encoding, meta, size, data, nchunks) VALUES (?, ?, ?, ?, NULL, ?)",
        (enc.sha, enc.encoding, enc.meta, size, nchunks),
    )


def _row_holds(conn: sqlite3.Connection, sha: bytes, row: tuple[object, ...]) -> bool:
    """Whether the stored row ``row`` (encoding, meta, size, nchunks) of blob ``sha`` holds
    bytes that hash to ``sha``, as a reader would decode them."""
    encoding, meta, size, nchunks = row
    if not isinstance(encoding, str) or not isinstance(meta, bytes | None):
        return False
    if type(size) is not int or type(nchunks) is not int or size < 0 or nchunks < 0:
        return False
    try:
        return stored_sha(conn, sha, encoding, meta, size, nchunks) == sha
    except (TypeError, ValueError):  # a column of another type than asyncflow writes
        return False


def settle_blobs(conn: sqlite3.Connection, encs: Iterable[Encoded]) -> list[Encoded]:
    """Of ``encs``, those that still have to be written (once per sha), after checking every
    row already stored under one of their shas.

    A row whose stored bytes (with its own encoding and meta) hash to its sha holds exactly
    the value, so it is kept. Any other row, planted or damaged, is deleted with its chunks,
    and its value is returned to be written afresh: a store prepared by someone else cannot
    make a new value take on bytes that the writer did not check. Blocking (hashes existing
    rows). The caller holds the transaction.
    """
    unique = list({enc.sha: enc for enc in encs}.values())
    found: dict[bytes, tuple[object, ...]] = {}
    for start in range(0, len(unique), _LOOKUP_BATCH):
        batch = [enc.sha for enc in unique[start : start + _LOOKUP_BATCH]]
        rows = conn.execute(
            "SELECT sha, encoding, meta, size, nchunks FROM main.blobs "
            f"WHERE sha IN ({','.join('?' * len(batch))})",
            batch,
        ).fetchall()
        for sha, *rest in rows:
            found[bytes(sha)] = tuple(rest)
    fresh: list[Encoded] = []
    for enc in unique:
        row = found.get(enc.sha)
        if row is not None and _row_holds(conn, enc.sha, row):
            continue
        if row is not None:
            conn.execute("DELETE FROM main.blobs WHERE sha = ?", (enc.sha,))
        if row is not None or enc.size > INLINE_LIMIT:
            # Chunks of a replaced row, or planted without one: none may join ours.
            conn.execute("DELETE FROM main.blob_chunks WHERE sha = ?", (enc.sha,))
        fresh.append(enc)
    return fresh


def stored_sha(
    conn: sqlite3.Connection,
    sha: bytes,
    encoding: str,
    meta: bytes | None,
    size: int,
    nchunks: int,
) -> bytes | None:
    """The content address of blob ``sha``'s stored bytes, recomputed a row at a time (a
    chunked blob is never held whole); None if its chunks are missing, out of order or do
    not add up to ``size``. For every check of stored bytes: import, archives, trust."""
    digest = content_hasher(encoding, meta, size)
    seen = 0
    if nchunks == 0:
        row = conn.execute("SELECT data FROM main.blobs WHERE sha = ?", (sha,)).fetchone()
        data = b"" if row is None or row[0] is None else row[0]
        digest.update(data)
        seen = len(data)
    else:
        if not (nchunks - 1) * CHUNK_SIZE < size <= nchunks * CHUNK_SIZE:
            return None
        cur = conn.execute(
            "SELECT idx, data FROM main.blob_chunks WHERE sha = ? AND idx < ? ORDER BY idx",
            (sha, nchunks),
        )
        for expected, (idx, data) in enumerate(cur):
            if idx != expected or data is None:
                return None
            digest.update(data)
            seen += len(data)
    return digest.digest() if seen == size else None
