"""A store file as the runtime sees it: the writer, a reader, the blob cache.

One :class:`Store` exists per file per process while runs use it (the writer must be
unique: SQLite allows one writer at a time, and one connection lets us group-commit).
Blobs written but not yet committed are served from ``pending``, so a child task can
read its parent's values before the parent's commit lands.

The store also holds this user's signing key (``_trust``): its writer signs every pickle
blob it stores, and :meth:`Store.check` tells whether a pickle blob read back may be
unpickled. No verdict is remembered: a pickle read from the file is checked (signature and
hash) at every read that unpickles it, whatever its size, since the file may be edited
between two reads. Only a blob still pending in memory, made by this process, is trusted
as it is (``RawBlob.vouched``).
"""

from __future__ import annotations

import atexit
import os
import sqlite3
import threading
from dataclasses import replace
from typing import ClassVar, TypeVar

from .._codecs import Encoded, copy_into, payload_buffer
from . import _queries as queries
from ._blobs import RawBlob
from ._cache import DEFAULT_CACHE_BYTES, BlobCache
from ._db import open_reader
from ._drive import drive
from ._plans import Plan
from ._signing import PICKLE, Problem, blob_problem
from ._trust import TrustKey
from ._writer import Writer

__all__ = ["Store"]

T = TypeVar("T")

# At exit, how long to wait for a writer to commit what is queued and close.
_EXIT_WAIT_SECONDS = 30.0


class Store:
    """Shared per-process handle on one store file; get it with :meth:`acquire`."""

    # The process-wide registry that makes the writer unique per file (see module doc).
    _open: ClassVar[dict[str, Store]] = {}
    _open_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: str, cache_bytes: int, key: TrustKey | None = None) -> None:
        self.path = path
        # This user's key, resolved (and created if need be) when the store is acquired:
        # a key that cannot be made fails the run before it starts.
        self.key = TrustKey() if key is None else key
        self.key.key(create=True)
        self.cache = BlobCache(cache_bytes)
        self.pending: dict[bytes, Encoded] = {}
        self.writer = Writer(path, self._committed, self._idle, key=self.key)
        self._reader: sqlite3.Connection | None = None
        self._reader_lock = threading.Lock()
        self._users = 0

    @classmethod
    def acquire_open(cls, path: str) -> Store | None:
        """The store at ``path`` if this process has it open already (never blocks on I/O)."""
        with cls._open_lock:
            store = cls._open.get(os.path.abspath(path))
            if store is not None:
                store._users += 1
            return store

    @classmethod
    def acquire(cls, path: str, cache_bytes: int = DEFAULT_CACHE_BYTES) -> Store:
        """Open (or share) the store at ``path``. Blocking: call from a worker thread.

        :raises StoreError: the store cannot be opened, or this user's signing key cannot
            be read or created (the message names the key file and ``$ASYNCFLOW_KEY_FILE``).
        """
        key = os.path.abspath(path)
        with cls._open_lock:
            store = cls._open.get(key)
            if store is None:
                store = cls(path, cache_bytes)
                cls._open[key] = store
            else:
                store.cache.raise_bound(cache_bytes)
            store._users += 1
            return store

    @classmethod
    def close_all(cls) -> None:
        """Close every store this process has open (registered with ``atexit``).

        The reader first, then the writer, which empties the WAL: the last connection to a
        file removes its ``-wal`` and ``-shm``, so a process that ends leaves the store as
        one file (unless another process still has it open).
        """
        with cls._open_lock:
            stores = list(cls._open.values())
            cls._open.clear()
        for store in stores:
            with store._reader_lock:
                if store._reader is not None:
                    store._reader.close()
                    store._reader = None
            store.writer.close(timeout=_EXIT_WAIT_SECONDS)

    def release(self) -> None:
        """Drop one user. The store stays open a moment for the next run, then closes
        itself (its writer checkpoints the WAL at the end of every run anyway)."""
        with self._open_lock:
            self._users -= 1

    def _idle(self) -> bool:
        # Called by the writer thread after a quiet spell: close if nobody uses us.
        with self._open_lock:
            if self._users > 0:
                return False
            if self._open.get(os.path.abspath(self.path)) is self:
                del self._open[os.path.abspath(self.path)]
        with self._reader_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
        return True

    def _committed(self, shas: list[bytes]) -> None:
        pending = self.pending
        for sha in shas:
            pending.pop(sha, None)

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


atexit.register(Store.close_all)
