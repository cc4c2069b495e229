"""Reading blobs from a store file: the read-only half of a store, shared with workers.

A :class:`BlobReader` opens the file read-only on first use, keeps recently read blobs in a
bounded cache, serves blobs still ``pending`` in memory (made by this process, not yet
committed) before the file, and checks pickle blobs against this user's key before anything
unpickles them. :class:`~._store.Store` is a reader plus the writer; a worker process reads
its parent's artifacts through a reader of its own and never writes.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import replace
from typing import TypeVar

from .._codecs import Encoded, copy_into, payload_buffer
from . import _queries as queries
from ._blobs import RawBlob
from ._cache import BlobCache
from ._db import open_reader
from ._drive import drive
from ._plans import Plan
from ._signing import PICKLE, Problem, blob_problem
from ._trust import TrustKey

__all__ = ["BlobReader"]

T = TypeVar("T")


class BlobReader:
    """Read-only access to the blobs of the store at ``path`` (see the module doc).

    :param path: the store file.
    :param cache_bytes: bound of the cache of read blobs.
    :param key: this user's key, to check pickle blobs; None for the default key file.
    """

    def __init__(self, path: str, cache_bytes: int, key: TrustKey | None = None) -> None:
        self.path = path
        self.key = TrustKey() if key is None else key
        self.cache = BlobCache(cache_bytes)
        self.pending: dict[bytes, Encoded] = {}
        self._reader: sqlite3.Connection | None = None
        self._reader_lock = threading.Lock()

    def close_reader(self) -> None:
        """Close the read connection (it reopens on the next read)."""
        with self._reader_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    def _conn(self) -> sqlite3.Connection:
        if self._reader is None:
            self._reader = open_reader(self.path)
        return self._reader

    def read_raw(self, sha: bytes) -> RawBlob:
        """One blob's stored form, from memory when possible. Blocking."""
        enc = self.pending.get(sha)
        if enc is not None:
            return self._own(enc)
        raw = self.cache.get(sha)
        if raw is not None:
            return raw
        raw = self.read(queries.blob(sha, self.path))
        self.cache.put(raw)
        return raw

    def warm(self, sha: bytes) -> bool:
        """Whether :meth:`read_raw` of ``sha``, and the check before decoding it, are cheap
        enough for the event loop: a small blob still pending, or a cached one that is not
        a pickle (a cached pickle is hashed again before it is decoded). Never blocks."""
        enc = self.pending.get(sha)
        if enc is not None:
            return enc.size <= 65536  # copying a large pending value is work for a thread
        raw = self.cache.peek(sha)
        return raw is not None and raw.encoding != PICKLE

    def read_raw_many(self, shas: list[bytes], *, check: bool = False) -> dict[bytes, RawBlob]:
        """Many blobs' stored forms in batched queries. Blocking.

        :param check: also check each pickle blob read from the file (signature and hash,
            as :meth:`check` would at decoding) here, in the caller's worker thread: those
            that pass come back ``vouched``, so a coroutine step that decodes them on the
            event loop does not hash them there. Each verdict rides on the returned object
            only; nothing is remembered.
        """
        out: dict[bytes, RawBlob] = {}
        missing: list[bytes] = []
        for sha in shas:
            if sha in out:
                continue
            enc = self.pending.get(sha)
            if enc is not None:
                out[sha] = self._own(enc)
                continue
            raw = self.cache.get(sha)
            if raw is not None:
                out[sha] = raw
            else:
                missing.append(sha)
        if missing:
            found = self.read(queries.blobs(missing, self.path))
            for raw in found.values():
                self.cache.put(raw)
            out.update(found)
        if check:
            for sha, raw in out.items():
                if raw.encoding == PICKLE and not raw.vouched and self.check(raw) is None:
                    out[sha] = replace(raw, vouched=True)
        return out

    def read(self, plan: Plan[T]) -> T:
        """Run a read plan (``_plans``) on this store, in one snapshot. Blocking.

        :raises StoreError: SQLite failed.
        """
        with self._reader_lock:
            return drive(self._conn(), plan, self.path)

    def check(self, raw: RawBlob) -> Problem | None:
        """Why the blob ``raw`` must not be decoded here, or None. Blocking (hashes it).

        Only pickle blobs can be refused: they load only if signed by this user's key and
        intact (their bytes hash to their sha), checked afresh at every call. A ``vouched``
        blob (still pending in memory, or checked as it was read) passes as it is.
        """
        if raw.encoding != PICKLE or raw.vouched:
            return None
        return blob_problem(raw, self.key)

    def signed(self, sha: bytes, mac: bytes | None) -> bool:
        """Whether the pickle blob ``sha`` with ``mac`` is signed by this user; the cheap
        half of :meth:`check`, which needs no payload."""
        return self.key.verify(sha, mac)

    def _own(self, enc: Encoded) -> RawBlob:
        # A blob still pending was made by a task of this process and never left it.
        return _from_pending(enc)


def _from_pending(enc: Encoded) -> RawBlob:
    # A private buffer lets the numpy codec adopt it: one copy, not two.
    if enc.size <= 65536:
        return RawBlob(enc.sha, enc.encoding, enc.meta, bytes(enc.payload), vouched=True)
    payload = payload_buffer(enc.size)
    with memoryview(payload) as dest:
        copy_into(dest, enc.payload)  # by slices: one 500 MB copy holds the GIL ~0.5 s
    return RawBlob(enc.sha, enc.encoding, enc.meta, payload, vouched=True)
