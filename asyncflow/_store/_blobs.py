"""Content-addressed blobs: inline rows for small values, 1 MiB chunk rows for large ones.

A blob is keyed by the sha256 the codec computed over (encoding, meta, payload). Chunking
keeps every row far below SQLite's 1 GB limit, so values of any size work. Reading blobs back is a
read plan in ``_queries`` (``blob``/``blobs``), shared by the runtime and the client.
"""

from __future__ import annotations

import sqlite3
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
    "stored_sha",
]

CHUNK_SIZE = 1 << 20
INLINE_LIMIT = CHUNK_SIZE

INSERT_INLINE = (
    "INSERT OR IGNORE INTO blobs (sha, encoding, meta, size, data, nchunks) "
    "VALUES (?, ?, ?, ?, ?, 0)"
)


@dataclass(frozen=True, slots=True)
class RawBlob:
    """A blob's stored form, before decoding. ``payload`` is bytes or a private buffer
    (from :func:`~asyncflow._codecs.payload_buffer`) that decoding may take over. ``mac`` is
    the row's signature (``blobs.mac``, see ``_trust``); None when unsigned or not read."""

    sha: bytes
    encoding: str
    meta: bytes | None
    payload: bytes | OwnedBuffer
    mac: bytes | None = None

    @property
    def size(self) -> int:
        """Payload length in bytes."""
        return len(self.payload)


def insert_blob(conn: sqlite3.Connection, enc: Encoded) -> None:
    """Store ``enc`` unless a blob with its sha exists. The caller holds the transaction."""
    size = enc.size
    if size <= INLINE_LIMIT:
        conn.execute(INSERT_INLINE, (enc.sha, enc.encoding, enc.meta, size, enc.payload))
        return
    if conn.execute("SELECT 1 FROM blobs WHERE sha = ?", (enc.sha,)).fetchone():
        return
    view = memoryview(enc.payload).cast("B")
    nchunks = (size + CHUNK_SIZE - 1) // CHUNK_SIZE
    conn.executemany(
        "INSERT OR REPLACE INTO blob_chunks (sha, idx, data) VALUES (?, ?, ?)",
        ((enc.sha, i, view[i * CHUNK_SIZE : (i + 1) * CHUNK_SIZE]) for i in range(nchunks)),
    )
    conn.execute(
        "INSERT INTO blobs (sha, encoding, meta, size, data, nchunks) VALUES (?, ?, ?, ?, NULL, ?)",
        (enc.sha, enc.encoding, enc.meta, size, nchunks),
    )


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
