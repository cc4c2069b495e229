"""The blob cache: bounded, least recently used first out, huge blobs never kept, one bound
per shared store (the largest asked for)."""

from __future__ import annotations

import os
from pathlib import Path

from asyncflow._store._blobs import RawBlob
from asyncflow._store._cache import MAX_ENTRIES, BlobCache
from asyncflow._store._store import Store


def blob(n: int, size: int) -> RawBlob:
    return RawBlob(n.to_bytes(32, "big"), "msgpack", None, bytes(size))


def test_the_cache_keeps_its_bound_and_drops_the_least_recently_used_first() -> None:
    cache = BlobCache(1000)
    for n in range(4):
        cache.put(blob(n, 240))  # 960 bytes
    assert cache.get((0).to_bytes(32, "big")) is not None  # 0 is now the most recent
    cache.put(blob(4, 240))  # 1200 > 1000: the least recently used (1) goes
    kept = [n for n in range(5) if cache.peek(n.to_bytes(32, "big")) is not None]
    assert kept == [0, 2, 3, 4]


def test_a_blob_over_a_quarter_of_the_bound_is_never_cached() -> None:
    cache = BlobCache(1000)
    cache.put(blob(1, 250))
    cache.put(blob(2, 251))
    assert cache.has((1).to_bytes(32, "big"))
    assert not cache.has((2).to_bytes(32, "big"))


def test_flows_sharing_a_store_share_the_largest_cache_bound_asked_for(tmp_path: Path) -> None:
    path = os.path.join(str(tmp_path), "runs.db")
    first = Store.acquire(path, cache_bytes=1000)
    try:
        second = Store.acquire(path, cache_bytes=512 << 20)
        try:
            assert second is first
            assert first.cache.max_bytes == 512 << 20
            third = Store.acquire(path, cache_bytes=10)
            assert third.cache.max_bytes == 512 << 20  # never lowered under another user
            third.release()
        finally:
            second.release()
    finally:
        first.release()
        Store.close_all()


def test_the_cache_keeps_at_most_max_entries_blobs_however_small() -> None:
    # ~400 bytes of objects per entry that the byte bound does not count: a wide join of
    # small values must not keep every one of them.
    cache = BlobCache(1 << 30)
    for n in range(MAX_ENTRIES + 100):
        cache.put(blob(n, 1))
    kept = [n for n in range(MAX_ENTRIES + 100) if cache.has(n.to_bytes(32, "big"))]
    assert kept == list(range(100, MAX_ENTRIES + 100))  # the oldest went first
