"""Writing a user's file whole or not at all: the one rule shared by ``dump -o`` and the run
report. The bytes go to a temporary file beside the target, which then replaces it; the new
file gets the permissions of the file it replaces, or else what the umask leaves of
rw-rw-rw- (the temporary file is 0600 until then)."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from typing import IO

__all__ = ["FolderNotWritable", "write_replacing"]


class FolderNotWritable(OSError):
    """The temporary file could not be made beside the target (its folder is missing or
    may not be written); ``folder`` names it. Nothing was written."""

    def __init__(self, folder: str, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror or type(cause).__name__)
        self.folder = folder


def _mode_for(path: str) -> int:
    with contextlib.suppress(OSError):
        return stat.S_IMODE(os.stat(path).st_mode)
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_replacing(
    path: str, fill: Callable[[IO[bytes]], object], *, prefix: str, suffix: str = ""
) -> None:
    """Write a new file at ``path`` with what ``fill`` writes to the open file: complete, or
    not at all (the temporary file is removed on any error or interruption).

    :raises FolderNotWritable: the temporary file cannot be made in ``path``'s folder.
    :raises OSError: the write or the replacement failed.
    """
    folder = os.path.dirname(os.path.abspath(path))
    mode = _mode_for(path)
    try:
        fd, temp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    except OSError as exc:
        raise FolderNotWritable(folder, exc) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fill(fh)
            os.fchmod(fh.fileno(), mode)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
