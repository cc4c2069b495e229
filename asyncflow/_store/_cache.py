"""A bounded, thread-safe LRU cache of raw (encoded) blobs, keyed by sha.

It holds encoded bytes only: every reader decodes its own copy, so in-place mutation of a
loaded value never reaches another task (CONTRACT, Artifacts 5). It holds no verdicts: a
pickle served from here is checked against its hash again before it is decoded.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # defining a flow reads DEFAULT_CACHE_BYTES: no sqlite3 for that
    from ._blobs import RawBlob

__all__ = ["DEFAULT_CACHE_BYTES", "MAX_ENTRIES", "BlobCache"]

DEFAULT_CACHE_BYTES = 256 << 20
# Blobs kept at most, whatever their size: an entry costs ~400 bytes of Python objects (the
# RawBlob, its sha, the map's slot) besides its payload, which the byte bound does not see:
# a 100,000-wide join of small values would otherwise keep ~40 MB of them after the run.
MAX_ENTRIES = 8192


class BlobCache:
    """Keeps recently used blobs up to ``max_bytes`` of payload in total, and at most
    :data:`MAX_ENTRIES` of them.

    A blob larger than a quarter of the bound is never cached, so one huge artifact cannot
    evict everything else.
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self._max = max(0, int(max_bytes))
        self._items: OrderedDict[bytes, RawBlob] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def max_bytes(self) -> int:
        """The bound, in payload bytes."""
        return self._max

    def raise_bound(self, max_bytes: int) -> None:
        """Make the bound at least ``max_bytes`` (a cache shared by several users keeps the
        largest bound any of them asked for)."""
        with self._lock:
            self._max = max(self._max, int(max_bytes))

    def get(self, sha: bytes) -> RawBlob | None:
        """The cached blob, marked as recently used, or None."""
        with self._lock:
            raw = self._items.get(sha)
            if raw is not None:
                self._items.move_to_end(sha)
            return raw

    def has(self, sha: bytes) -> bool:
        """Whether ``sha`` is cached (does not change its recency)."""
        return sha in self._items

    def peek(self, sha: bytes) -> RawBlob | None:
        """The cached blob, or None, without changing its recency."""
        return self._items.get(sha)

    def put(self, raw: RawBlob) -> None:
        """Cache ``raw`` as read from the file.

        Only bytes payloads: a private buffer (``payload_buffer``) may be adopted by the
        value decoded from it, and every later reader would share that value's in-place
        changes. Never a ``vouched`` blob: a verdict holds for one read only.
        """
        size = raw.size
        if size * 4 > self._max or not isinstance(raw.payload, bytes) or raw.vouched:
            return
        with self._lock:
            if raw.sha in self._items:
                self._items.move_to_end(raw.sha)
                return
            self._items[raw.sha] = raw
            self._bytes += size
            items = self._items
            while (self._bytes > self._max or len(items) > MAX_ENTRIES) and items:
                _, old = items.popitem(last=False)
                self._bytes -= old.size
