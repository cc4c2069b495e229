"""``dump ... -o FILE``: an artifact's whole value written to a file, in a form that loads back.

=====================  ====================================  ============================
value                  FILE holds                            read it back with
=====================  ====================================  ============================
numpy array            ``.npy`` (``numpy.save``, no pickle)  ``numpy.load(FILE)``
bytes, bytearray       the bytes as they are                 ``open(FILE, "rb").read()``
str                    the text, UTF-8, nothing added        ``open(FILE).read()``
anything else          a pickle (protocol 5)                 ``pickle.load(open(FILE, "rb"))``
=====================  ====================================  ============================

A numpy array of Python objects (dtype ``object``) is pickled too. The file is written next
to its final name and moved there when complete, so a failed dump leaves no half file; an
existing regular file is replaced only with ``--force``, and never the store itself.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import signal
import stat
import threading
from collections.abc import Callable, Iterator
from typing import IO, Any

from .._errors import UsageError
from .._store._paths import is_store_file
from .._store._replace import FolderNotWritable, write_replacing
from ._format import one_line

__all__ = ["refuse_existing", "write_bytes", "write_value"]


def refuse_existing(path: str, force: bool, store: str | None = None) -> None:
    """Raise unless ``path`` may be written: a new name, or (with ``force``) a regular file
    that is not ``store`` nor one of its side files.

    :raises FileExistsError: ``path`` exists and ``force`` is False; or it is the store (or
        its ``-wal``, ``-shm``, ``-journal``), or not a regular file, whatever ``force``
        (exit code 2).
    """
    if store is not None and is_store_file(path, store):
        raise FileExistsError(
            f"{path!r} is the store dump reads from (or one of its side files, which SQLite "
            "reads as part of the store even before they exist); dump never writes there, "
            "even with --force: choose another name."
        )
    if not os.path.lexists(path):
        return
    if not stat.S_ISREG(os.lstat(path).st_mode):
        raise FileExistsError(
            f"{path!r} exists and is not a regular file (a folder, a link, a pipe or a "
            "device); dump -o writes a regular file, and never replaces anything else, even "
            "with --force: choose another name."
        )
    if not force:
        raise FileExistsError(
            f"{path!r} exists already; dump writes a new file: choose another name, or pass "
            "--force to replace it."
        )


def _write(path: str, force: bool, fill: Callable[[IO[bytes]], object], store: str | None) -> None:
    refuse_existing(path, force, store)
    try:
        with _terminated_as_exit():
            write_replacing(path, fill, prefix=".dump-")
    except FolderNotWritable as exc:  # said of the file asked for, not of the temporary one
        raise UsageError(
            f"cannot write {path!r}: its folder {exc.folder!r} cannot be written to "
            f"({exc.strerror}); create the folder, or pass a path in one you can write to"
        ) from None


@contextlib.contextmanager
def _terminated_as_exit() -> Iterator[None]:
    """While a file is written: SIGTERM ends the command as SystemExit(143), so that the
    temporary file is removed on the way out (SIGKILL cannot be caught: it leaves one
    ``.dump-*`` file beside the target)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    before = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def write_bytes(
    path: str,
    data: bytes | bytearray | memoryview | mmap.mmap,
    force: bool,
    store: str | None = None,
) -> None:
    """Write ``data`` to ``path`` as it is (``--raw``).

    :raises FileExistsError: ``path`` exists and ``force`` is False.
    """
    _write(path, force, lambda fh: fh.write(data), store)


def write_value(path: str, value: Any, force: bool, store: str | None = None) -> str:
    """Write ``value`` to ``path`` (see the module doc); return how to read it back.

    :raises FileExistsError: ``path`` exists and ``force`` is False.
    :raises OSError: the file cannot be written.
    """
    if isinstance(value, bytes | bytearray | memoryview):
        _write(path, force, lambda fh: fh.write(value), store)
        return "the bytes as they are"
    if isinstance(value, str):
        data = value.encode("utf-8", "surrogatepass")
        _write(path, force, lambda fh: fh.write(data), store)
        return "UTF-8 text"
    if type(value).__module__ == "numpy" and type(value).__name__ == "ndarray":
        import numpy as np

        if value.dtype != object:
            _write(path, force, lambda fh: np.save(fh, value, allow_pickle=False), store)
            return "a numpy .npy file: numpy.load(FILE)"
    import cloudpickle  # imported here: most dumps never pickle

    try:  # cloudpickle, as the store does: a class defined in the flow file pickles too
        data = cloudpickle.dumps(value, protocol=5)
    except Exception as exc:
        raise UsageError(
            f"cannot write {type(value).__qualname__} value to {path!r}: it does not pickle "
            f"({type(exc).__name__}: {one_line(str(exc), 200)}); print it instead (without -o), "
            "or write its stored bytes with --raw"
        ) from None
    _write(path, force, lambda fh: fh.write(data), store)
    return "a pickle: pickle.load(open(FILE, 'rb'))"
