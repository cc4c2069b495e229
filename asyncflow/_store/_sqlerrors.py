"""What a SQLite failure on a store file means: a StoreError that says what is wrong and what
to do, and waiting out another process's lock."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from .._errors import StoreError, StoreFormatError
from ._guards import describe, truncated, truncation, unwritable_folder

__all__ = [
    "SQLITE_FAILURES",
    "is_busy",
    "retry_busy",
    "sqlite_errors",
    "store_error",
]

T = TypeVar("T")


# What a SQLite call may raise on a damaged file: its errors, and UnicodeDecodeError when the
# message SQLite gives quotes bytes of the file that are not UTF-8 (a garbled schema):
# Python then fails to build the sqlite3 exception itself.
SQLITE_FAILURES = (sqlite3.Error, UnicodeDecodeError)


def store_error(exc: sqlite3.Error | UnicodeDecodeError, path: str, action: str) -> StoreError:
    """Explain a SQLite failure on the store at ``path``: what is wrong and what to do.

    :param exc: what SQLite raised.
    :param path: the store file.
    :param action: what asyncflow was doing, as in "cannot <action> the store file":
        ``"open"``, ``"read"`` or ``"write to"``.
    :returns: a :class:`StoreFormatError` if the file is not a SQLite database at all, else
        a :class:`StoreError`; the caller raises it ``from exc``.
    """
    code = getattr(exc, "sqlite_errorname", "") or ""
    head = f"cannot {action} {describe(path)}"
    if isinstance(exc, UnicodeDecodeError):
        return StoreError(
            f"{head}: it is damaged (SQLite's error quotes bytes of the file that are not "
            "text, as a garbled schema does); restore the file from a copy, or pass store= a "
            "new path to start afresh.",
            path,
        )
    said = f"(SQLite: {exc})"
    folder = os.path.dirname(os.path.abspath(path))
    if code == "SQLITE_NOTADB":
        return StoreFormatError(
            f"{describe(path)} is not an asyncflow store: it is not a SQLite database {said}; "
            "point store= at an asyncflow store, or at a path that does not exist yet to "
            "start a new one.",
            path,
        )
    if code.startswith("SQLITE_CORRUPT"):
        cut = truncation(path)
        if cut is not None:
            return truncated(path, cut, action, f" {said}")
        return StoreError(
            f"{head}: it is damaged {said}; restore the file from a copy, or pass store= a new "
            "path to start afresh.",
            path,
        )
    if code == "SQLITE_FULL":
        return StoreError(
            f"{head}: the disk holding it is full {said}; free some space, then run the flow "
            "again.",
            path,
        )
    if code == "SQLITE_READONLY_DIRECTORY" or (
        code == "SQLITE_CANTOPEN" and os.path.isfile(path) and unwritable_folder(path)
    ):
        # (On a read-only file system SQLite says only "unable to open database file".)
        name = os.path.basename(path)
        return StoreError(
            f"cannot use {describe(path)}: its folder {folder!r} is read-only, and SQLite "
            f"must create {name}-wal and {name}-shm beside it {said}; make the folder "
            "writable, or copy the store to a folder you may write.",
            path,
        )
    if code.startswith("SQLITE_READONLY"):
        return StoreError(
            f"{head}: the file is read-only {said}; make it (and its -wal and -shm files, if "
            "any) writable, or pass store= a path you may write.",
            path,
        )
    if code.startswith("SQLITE_CANTOPEN"):
        if not os.path.exists(path):
            return StoreError(
                f"{head}: the file cannot be created in the folder {folder!r} {said}; make the "
                "folder writable, or choose a store path in a folder you may write.",
                path,
            )
        return StoreError(
            f"{head} {said}; check that you may read and write the file and its folder.",
            path,
        )
    if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return StoreError(
            f"{head}: another process holds it locked {said}; retry later, or check for a "
            "stuck process.",
            path,
        )
    if code.startswith("SQLITE_IOERR"):
        return StoreError(
            f"{head}: the operating system reported an I/O error {said}; check the disk and "
            "that the file is still there (a network drive may have gone away), then retry.",
            path,
        )
    return StoreError(
        f"{head} {said}; check that it is an intact asyncflow store that you may read and write.",
        path,
    )


@contextlib.contextmanager
def sqlite_errors(path: str, action: str) -> Iterator[None]:
    """Turn a SQLite failure inside the block into the :func:`store_error` for it."""
    try:
        yield
    except SQLITE_FAILURES as exc:
        raise store_error(exc, path, action) from exc


_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite's "database is locked" (SQLITE_BUSY / SQLITE_LOCKED, any
    extended code such as BUSY_SNAPSHOT or BUSY_RECOVERY): worth waiting and retrying."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    return "locked" in str(exc) or "busy" in str(exc)


def retry_busy(fn: Callable[[], T], path: str, *, attempts: int = 50) -> T:
    """Run ``fn``, retrying while another process holds the write lock past busy_timeout.

    Each attempt already waits up to ``BUSY_TIMEOUT_MS`` inside SQLite; the retries add
    pauses growing to 0.5 s, so a wait is bounded (about five minutes at worst) and only
    then reported as a StoreError.
    """
    delay = 0.01
    for attempt in range(attempts):
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            if attempt == attempts - 1:
                raise StoreError(
                    f"{describe(path)} stayed locked by another process for too long; "
                    "retry later or check for a stuck process.",
                    path,
                ) from exc
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
    raise AssertionError("unreachable")
