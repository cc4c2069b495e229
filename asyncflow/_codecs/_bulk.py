"""Large payloads moved in slices, so a worker thread never holds the GIL for long.

One C call that copies 500 MB (``bytes(view)``, ``msgpack.packb(big)``, ``pickle.loads``
of an object holding a large ``bytes``) holds Python's GIL for its whole length, 0.2-1.7 s,
and the event loop of the same process waits that long even though the copy runs in another
thread. The helpers here do the same work in slices of :data:`SLICE` bytes, going back to
Python between slices (where another thread may take the GIL), or in calls that release the
GIL: ``bytes.join`` of exact ``bytes`` (CPython drops the GIL for joins over 1 MiB), hashing.
The bytes produced are the same as the one-call forms; only who waits differs.

A large payload we make (:func:`joined`) lives in a private memory map with huge pages, not
in a ``bytes``: freeing a 500 MB ``bytes`` (4 KiB pages from malloc) holds the GIL 40-90 ms,
unmapping the map about 2 ms.
"""

from __future__ import annotations

import sys
from typing import Any, Final

from ._buffers import payload_buffer

__all__ = ["SLICE", "PartsWriter", "SliceReader", "copy_into", "fresh_bytes", "joined"]

#: The most bytes copied in one C call while the GIL is held.
SLICE: Final = 1 << 20


def fresh_bytes(view: memoryview) -> bytes:
    """A ``bytes`` copy of ``view`` (flat, of bytes), made slice by slice, then joined
    without the GIL."""
    size = view.nbytes
    if size <= SLICE:
        return bytes(view)
    return b"".join([bytes(view[i : i + SLICE]) for i in range(0, size, SLICE)])


def joined(parts: list[bytes]) -> bytes | memoryview:
    """``b"".join(parts)``; over :data:`SLICE` bytes, a read-only view of a payload buffer
    (see the module doc) filled by slices."""
    size = sum(map(len, parts))
    if size <= SLICE:
        return b"".join(parts)
    out = memoryview(payload_buffer(size))
    pos = 0
    for part in parts:
        end = pos + len(part)
        copy_into(out[pos:end], part)
        pos = end
    return out.toreadonly()


def copy_into(dest: memoryview, src: Any) -> None:
    """Copy the buffer ``src`` into the writable ``dest`` of the same length: in one numpy
    call, which releases the GIL, when numpy is imported (it is, for a numpy value), else
    by slices.

    The copy into a fresh buffer page-faults all of it in: 200 MB took 0.1-0.5 s here, and
    by slices the GIL was held for all but the gaps between them, which the event loop,
    the writer and the copying thread then contended for (loop lags of 100-130 ms while a
    coroutine step read a 200 MB array still pending: benchmarks/RESULTS.md, issue 15).
    """
    with memoryview(src) as whole, whole.cast("B") as flat:
        np = sys.modules.get("numpy")
        if np is not None and flat.nbytes > SLICE:
            np.copyto(np.frombuffer(dest, np.uint8), np.frombuffer(flat, np.uint8))
            return
        for i in range(0, flat.nbytes, SLICE):
            dest[i : i + SLICE] = flat[i : i + SLICE]


class PartsWriter:
    """A file for ``Pickler``: keeps what it is given, to be joined once at the end.

    The pickler hands a large ``bytes`` over as it is (kept, not copied); any other buffer
    (a numpy array's memory, a temporary view) is copied out by slices at once, since it may
    change or vanish after the call.
    """

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: Any) -> int:
        if type(data) is bytes:
            self.parts.append(data)
            return len(data)
        with memoryview(data) as whole, whole.cast("B") as flat:
            size = flat.nbytes
            for i in range(0, size, SLICE):
                self.parts.append(bytes(flat[i : i + SLICE]))
        return size

    def getvalue(self) -> bytes | memoryview:
        """Everything written, in one buffer (see :func:`joined`)."""
        return joined(self.parts)


class SliceReader:
    """A read-only file over a buffer for ``Unpickler``: large reads are filled by slices.

    The unpickler reads a large ``bytes`` or ``bytearray`` with one :meth:`readinto` into
    the new object's memory, which we fill here a slice at a time.
    """

    __slots__ = ("pos", "view")

    def __init__(self, payload: Any) -> None:
        self.view = memoryview(payload).cast("B")
        self.pos = 0

    def _take(self, n: int) -> memoryview:
        start = self.pos
        end = len(self.view) if n < 0 else min(start + n, len(self.view))
        self.pos = end
        return self.view[start:end]

    def read(self, n: int = -1) -> bytes:
        return fresh_bytes(self._take(n))

    def readinto(self, buf: Any) -> int:
        with memoryview(buf) as whole, whole.cast("B") as out:
            part = self._take(out.nbytes)
            size = part.nbytes
            for i in range(0, size, SLICE):
                out[i : i + SLICE] = part[i : i + SLICE]
        return size

    def readline(self) -> bytes:
        # Only the text opcodes of protocol 0 read lines; our pickles are protocol 5.
        rest = self.view[self.pos :]
        for i in range(0, rest.nbytes, SLICE):
            end = bytes(rest[i : i + SLICE]).find(b"\n")
            if end >= 0:
                return self.read(i + end + 1)
        return self.read()
