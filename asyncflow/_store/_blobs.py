"""Content-addressed blobs: inline rows for small values, 1 MiB chunk rows for large ones.

A blob is keyed by the sha256 the codec computed over (encoding, meta, payload). Chunking
keeps every row far below SQLite's 1 GB limit, so values of any size work, and lets a load
copy chunks straight into one preallocated buffer (no second copy of a large array).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._codecs import Encoded, decode, payload_buffer
from .._errors import StoreError

if TYPE_CHECKING:
    from .._codecs import OwnedBuffer

__all__ = [
    "CHUNK_SIZE",
    "INLINE_LIMIT",
    "RawBlob",
    "insert_blob",
    "read_raw",
    "read_raw_many",
    "read_value",
]

CHUNK_SIZE = 1 << 20
INLINE_LIMIT = CHUNK_SIZE

SELECT_BLOB = "SELECT encoding, meta, size, data, nchunks FROM blobs WHERE sha = ?"
SELECT_CHUNKS = "SELECT data FROM blob_chunks WHERE sha = ? ORDER BY idx"
INSERT_INLINE = (
    "INSERT OR IGNORE INTO blobs (sha, encoding, meta, size, data, nchunks) "
    "VALUES (?, ?, ?, ?, ?, 0)"
)


@dataclass(frozen=True, slots=True)
class RawBlob:
    """A blob's stored form, before decoding. ``payload`` is bytes or a private buffer
    (from :func:`~asyncflow._codecs.payload_buffer`) that decoding may take over."""

    sha: bytes
    encoding: str
    meta: bytes | None
    payload: bytes | OwnedBuffer

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


def _assemble(
    conn: sqlite3.Connection, sha: bytes, size: int, nchunks: int, path: str
) -> OwnedBuffer:
    buf = payload_buffer(size)
    view = memoryview(buf)
    pos = 0
    count = 0
    for (chunk,) in conn.execute(SELECT_CHUNKS, (sha,)):
        end = pos + len(chunk)
        if end > size:
            break
        view[pos:end] = chunk
        pos = end
        count += 1
    if pos != size or count != nchunks:
        raise StoreError(
            f"blob {sha.hex()} in {path!r} is incomplete ({pos} of {size} bytes); "
            "the store is damaged: restore it from a copy or re-run the flow.",
            path,
        )
    return buf


def read_raw(conn: sqlite3.Connection, sha: bytes, path: str = "") -> RawBlob:
    """Read one blob's stored form.

    :raises StoreError: no such blob, or its chunks are missing.
    """
    row = conn.execute(SELECT_BLOB, (sha,)).fetchone()
    if row is None:
        raise StoreError(
            f"blob {sha.hex()} is missing from {path!r}; the store is damaged: restore it "
            "from a copy or re-run the flow.",
            path,
        )
    encoding, meta, size, data, nchunks = row
    if nchunks:
        data = _assemble(conn, sha, size, nchunks, path)
    return RawBlob(sha, encoding, meta, data)


def read_raw_many(
    conn: sqlite3.Connection, shas: list[bytes], path: str = ""
) -> dict[bytes, RawBlob]:
    """Read many blobs in batched queries (500 keys a query)."""
    out: dict[bytes, RawBlob] = {}
    unique = list(dict.fromkeys(shas))
    for start in range(0, len(unique), 500):
        batch = unique[start : start + 500]
        marks = ",".join("?" * len(batch))
        rows = conn.execute(
            f"SELECT sha, encoding, meta, size, data, nchunks FROM blobs WHERE sha IN ({marks})",
            batch,
        ).fetchall()
        for sha, encoding, meta, size, data, nchunks in rows:
            if nchunks:
                data = _assemble(conn, sha, size, nchunks, path)
            out[sha] = RawBlob(sha, encoding, meta, data)
    missing = [s for s in unique if s not in out]
    if missing:
        raise StoreError(
            f"{len(missing)} blob(s) (first {missing[0].hex()}) are missing from {path!r}; "
            "the store is damaged: restore it from a copy or re-run the flow.",
            path,
        )
    return out


def read_value(conn: sqlite3.Connection, sha: bytes, path: str = "") -> Any:
    """Read and decode one blob."""
    raw = read_raw(conn, sha, path)
    return decode(raw.encoding, raw.meta, raw.payload)
