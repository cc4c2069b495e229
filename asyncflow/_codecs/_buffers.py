"""Buffers to read a stored payload into, which :func:`~asyncflow._codecs.decode` may adopt.

A numpy array decoded from such a buffer wraps it (no copy); from any other payload, a copy.
"""

from __future__ import annotations

import contextlib
import mmap
from typing import Final

#: A payload buffer that :func:`decode` may take over (see :func:`payload_buffer`).
OwnedBuffer = bytearray | mmap.mmap

__all__ = ["OwnedBuffer", "owns_buffer", "payload_buffer"]

_BIG_BUFFER: Final = 1 << 20
# Private anonymous memory (where the platform has it), which Linux backs with huge pages.
_MAP_FLAGS: Final = (
    mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS if hasattr(mmap, "MAP_ANONYMOUS") else None
)
_MADV_HUGEPAGE: Final = getattr(mmap, "MADV_HUGEPAGE", None)


def payload_buffer(size: int) -> OwnedBuffer:
    """A writable buffer of ``size`` bytes to read a payload into, for :func:`decode` to adopt.

    Large ones are private anonymous memory maps advised to use huge pages rather than
    bytearrays: filling 100 MB then takes ~20 ms instead of ~150-400 ms of 4 KiB page faults
    (benchmarks/RESULTS.md); freeing one returns its memory at once.
    """
    if size < _BIG_BUFFER or _MAP_FLAGS is None:
        return bytearray(size)
    buf = mmap.mmap(-1, size, flags=_MAP_FLAGS)
    if _MADV_HUGEPAGE is not None:
        with contextlib.suppress(OSError):
            buf.madvise(_MADV_HUGEPAGE)
    return buf


def owns_buffer(payload: object) -> bool:
    """Whether :func:`decode` takes over ``payload``'s memory (a :func:`payload_buffer`)."""
    return isinstance(payload, bytearray | mmap.mmap)
