"""Checks of a store file made with Python, around SQLite: what the path is, and whether the
file is whole.

SQLite would read a folder's path, or a file cut short by an interrupted copy, in ways that
hide the problem; these checks name it first. They also keep the one process-wide fact that
limits them: a file SQLite has opened in this process is never opened with Python again
(:class:`OpenedFiles`).
"""

from __future__ import annotations

import os
import threading
import time
from typing import ClassVar

from .._errors import StoreError

__all__ = [
    "OpenedFiles",
    "describe",
    "refuse_folder",
    "refuse_truncated",
    "truncated",
    "truncation",
    "unwritable_folder",
]


def describe(path: str) -> str:
    return f"the store file {path!r}"


class OpenedFiles:
    """The files (device, inode) this process has opened with SQLite.

    POSIX drops every lock a process holds on a file when the process closes *any*
    descriptor of that file. SQLite guards its own descriptors against this, but a plain
    ``open()``/``close()`` of a store file next to a live SQLite connection of this process
    would silently release that connection's locks: another process could then checkpoint
    and delete the write-ahead log our writer is still appending to, and its later commits
    would be invisible (and lost in a crash). So once SQLite has opened a file in this
    process, asyncflow never opens it with Python again. This mirrors a process-wide fact
    of the operating system, hence the process-wide set.
    """

    _keys: ClassVar[set[tuple[int, int]]] = set()
    _lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def add(cls, path: str) -> None:
        try:
            st = os.stat(path)
        except OSError:
            return
        with cls._lock:
            cls._keys.add((st.st_dev, st.st_ino))

    @classmethod
    def seen(cls, path: str) -> bool:
        try:
            st = os.stat(path)
        except OSError:
            return False
        with cls._lock:
            return (st.st_dev, st.st_ino) in cls._keys


def truncation(path: str) -> tuple[int, int] | None:
    """(bytes in the file, bytes its SQLite header declares) if the file is shorter.

    Only for a file SQLite has not opened in this process yet (see :class:`OpenedFiles`):
    it is checked when first opened, which is when a cut-short copy arrives.
    """
    if OpenedFiles.seen(path):
        return None
    try:
        with open(path, "rb") as fh:
            head = fh.read(100)
            size = os.fstat(fh.fileno()).st_size
    except OSError:
        return None
    if len(head) < 100 or not head.startswith(b"SQLite format 3\x00"):
        return None
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    # The page count in the header is valid only if it was written with the change counter.
    if head[24:28] != head[92:96] or size >= pages * page_size:
        return None
    return size, pages * page_size


def truncated(path: str, cut: tuple[int, int], action: str, said: str = "") -> StoreError:
    return StoreError(
        f"cannot {action} {describe(path)}: it is truncated: it has {cut[0]} bytes, but its "
        f"header says {cut[1]}{said}; restore the file from a copy, or pass store= a new path "
        "to start afresh.",
        path,
    )


def refuse_truncated(path: str) -> None:
    """Refuse a file cut short of the size its header declares (an interrupted copy).

    SQLite reads pages missing from the end of a file as zeros, which can hand back damaged
    values without a word. Checked only while no write-ahead log holds pages: then the
    file alone is the whole database and must be complete.
    """
    for attempt in range(2):
        cut = truncation(path)
        try:
            logged = os.path.getsize(path + "-wal") > 0
        except OSError:
            logged = False
        if cut is None or logged:
            return
        if attempt == 0:
            time.sleep(0.05)  # a checkpoint of another process may just be extending the file
    assert cut is not None
    raise truncated(path, cut, "use")


def refuse_folder(path: str) -> None:
    if os.path.isdir(path):
        raise StoreError(
            f"{describe(path)} is a folder, not a file; pass the path of a file, such as "
            f"{os.path.join(path, 'asyncflow.db')!r}.",
            path,
        )


def unwritable_folder(path: str) -> bool:
    """Whether the store's folder is on a read-only file system, or may not be written."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return True
    except OSError:
        return False
    return not os.access(folder, os.W_OK)
