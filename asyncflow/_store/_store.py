"""A store file as the runtime sees it: the writer over a reader (``_reader``) and its cache.

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
import threading
from typing import ClassVar

from ._cache import DEFAULT_CACHE_BYTES
from ._reader import BlobReader
from ._trust import TrustKey
from ._writer import Writer

__all__ = ["Store"]

# At exit, how long to wait for a writer to commit what is queued and close.
_EXIT_WAIT_SECONDS = 30.0


class Store(BlobReader):
    """Shared per-process handle on one store file; get it with :meth:`acquire`."""

    # The process-wide registry that makes the writer unique per file (see module doc).
    _open: ClassVar[dict[str, Store]] = {}
    _open_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: str, cache_bytes: int, key: TrustKey | None = None) -> None:
        super().__init__(path, cache_bytes, key)
        # This user's key, resolved (and created if need be) when the store is acquired:
        # a key that cannot be made fails the run before it starts.
        self.key.key(create=True)
        self.writer = Writer(path, self._committed, self._idle, key=self.key)
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
            store.close_reader()
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
        self.close_reader()
        return True

    def _committed(self, shas: list[bytes]) -> None:
        pending = self.pending
        for sha in shas:
            pending.pop(sha, None)


atexit.register(Store.close_all)
