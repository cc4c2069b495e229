"""Store paths: where the store lives when the user does not say, which paths asyncflow will
hand to SQLite, and the one way a path becomes a SQLite URI.

Where the store lives when no ``store=`` is given (:func:`resolve_store_path`), for runs and
the client alike, so that a run and a later read from the same folder agree:

1. inside a running step, the store of the run (:data:`run_store_var`, set by the runtime
   around each task's code, in threads, coroutines and worker processes alike);
2. the store this process chose with ``asyncflow.metadata(path)`` (:func:`set_default_store`);
3. ``$ASYNCFLOW_STORE``;
4. the nearest existing ``asyncflow.db`` in the current folder or one of its parents, as
   Metaflow finds ``.metaflow`` (a notebook in a subfolder of a project finds its store);
5. ``asyncflow.db`` in the current folder (where a first run creates it).

Every file asyncflow opens with SQLite (a store, an archive, an export's output) passes
:func:`check_path` first, and is opened through :func:`sqlite_uri`: a path is never given to
SQLite as text it might read as a URI (``file:x.db``, ``x%41.db``).
"""

from __future__ import annotations

import os
import pathlib
import stat
from contextvars import ContextVar

from .._errors import StoreError, UsageError

__all__ = [
    "DEFAULT_STORE_NAME",
    "check_path",
    "find_store",
    "is_store_file",
    "resolve_store_path",
    "run_store_var",
    "set_default_store",
    "sqlite_uri",
]

DEFAULT_STORE_NAME = "asyncflow.db"

# The absolute path of the store of the run whose task is running in this context; None
# outside a step. Set by the runtime (``_runtime/_attempt``) where it sets ``current``.
run_store_var: ContextVar[str | None] = ContextVar("asyncflow_run_store", default=None)

# The store chosen for this process by ``asyncflow.metadata(path)``; None: not chosen.
_chosen: list[str | None] = [None]


def set_default_store(path: str | None) -> None:
    """Make ``path`` (absolute) the default store of this process, after a running step's
    own store; None goes back to ``$ASYNCFLOW_STORE`` and store discovery."""
    _chosen[0] = path


def find_store(folder: str | None = None) -> str:
    """The nearest existing ``asyncflow.db`` in ``folder`` (default: the current folder) or
    one of its parents; if there is none, ``asyncflow.db`` in ``folder``. An absolute path."""
    start = os.path.abspath(folder if folder is not None else os.getcwd())
    here = start
    while True:
        candidate = os.path.join(here, DEFAULT_STORE_NAME)
        if os.path.exists(candidate):  # stat only: never blocks, whatever the file is
            return candidate
        parent = os.path.dirname(here)
        if parent == here:
            return os.path.join(start, DEFAULT_STORE_NAME)
        here = parent


def resolve_store_path(store: str | os.PathLike[str] | None) -> str:
    """``store`` if given; else, inside a running step, the run's own store; else the store
    chosen with ``asyncflow.metadata()``; else ``$ASYNCFLOW_STORE``; else the nearest
    ``asyncflow.db`` in the current folder or a parent; else ``asyncflow.db`` in the current
    folder (see the module doc).

    :raises UsageError: ``store`` is not a path (an int, say).
    """
    if store is None:
        return (
            run_store_var.get() or _chosen[0] or os.environ.get("ASYNCFLOW_STORE") or find_store()
        )
    try:
        path = os.fspath(store)
    except TypeError:
        path = None
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, str):
        raise UsageError(
            f"store={store!r} is not a path: pass the store file's path as a str or a "
            "pathlib.Path (or None for the default store: $ASYNCFLOW_STORE, else the nearest "
            "asyncflow.db here or in a parent folder).",
            "store",
        )
    return path


# What a file that is not a regular file is, for the message.
_KINDS = (
    (stat.S_ISFIFO, "named pipe (FIFO)"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISDIR, "folder"),
)


def check_path(path: str) -> None:
    """Refuse a path SQLite must never open: one holding a NUL character, or a file (or a
    ``-wal``/``-shm`` file beside it) that exists but is not a regular file. SQLite (and
    asyncflow's own look at a file's header) would wait forever on a named pipe, and read
    a device's bytes as a database. A missing path passes (a new store or archive); the
    store itself being a folder is left to the caller's clearer message.

    :raises StoreError: what the path is, and what to pass instead.
    """
    if "\0" in path:
        raise StoreError(
            f"the path {path!r} holds a NUL character, which no file name can hold; pass "
            "the path of a store or archive file.",
            path,
        )
    for name in (path, path + "-wal", path + "-shm"):
        try:
            mode = os.stat(name).st_mode  # never blocks, whatever the file is
        except OSError:
            continue  # missing (or unreadable: SQLite then says why)
        if stat.S_ISREG(mode) or (name == path and stat.S_ISDIR(mode)):
            continue
        kind = next((what for test, what in _KINDS if test(mode)), "special file")
        raise StoreError(
            f"{name!r} is a {kind}, not a regular file; asyncflow reads and writes stores and "
            "archives only as regular files (reading this one could wait forever or read "
            "garbage): pass the path of a store or archive file, or a path that does not "
            "exist yet for a new one.",
            path,
        )


_SIDE_SUFFIXES = ("", "-wal", "-shm", "-journal")


def is_store_file(path: str, store: str) -> bool:
    """Whether ``path`` names the store ``store`` or one of the side files SQLite keeps beside
    it (``-wal``, ``-shm``, ``-journal``), existing or not, through any symbolic link (of the
    file or of a folder) or hard link. A file asyncflow writes for the user (``dump -o``,
    ``--run-id-file``) must never be one of these: SQLite would read it as the store's log or
    as a transaction to undo, and lose runs."""
    bases = {os.path.abspath(store), os.path.realpath(store)}
    targets = {base + suffix for base in bases for suffix in _SIDE_SUFFIXES}
    if {os.path.abspath(path), os.path.realpath(path)} & targets:
        return True
    for target in targets:
        try:
            if os.path.samefile(path, target):
                return True
        except (OSError, ValueError):
            continue
    return False


def sqlite_uri(path: str, mode: str) -> str:
    """The SQLite URI of the file ``path`` (made absolute, every special character quoted:
    ``%``, ``?``, ``#``, spaces, newlines, non-ASCII), opened with ``mode``
    (``ro``, ``rw``, ``rwc``) and any further ``&``-joined options."""
    return pathlib.Path(os.path.abspath(path)).as_uri() + "?mode=" + mode
