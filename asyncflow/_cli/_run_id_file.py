"""Metaflow's ``--run-id-file PATH``: the run's id, written to a file as the run starts.

The path is checked before the run starts, so that a mistyped path never costs data: it may
not be the store or one of its side files (SQLite would read the id as the store's log, or as
a transaction to undo), nor the flow file being run, nor anything but a regular file (a named
pipe would hold the run up for ever). A file that cannot be written once the run has started
is one warning line, and the run goes on.
"""

from __future__ import annotations

import os
import stat
import sys

from .._store._paths import is_store_file

__all__ = ["run_id_file_problem", "write_run_id"]


def run_id_file_problem(path: str, store: str, script: str | None) -> str | None:
    """Why ``path`` may not receive the run id (one line saying what to pass instead), or
    None when it may."""
    what = None
    if "\0" in path:
        what = "holds a NUL character"
    elif is_store_file(path, store):
        what = "is the store of the run (or one of its side files)"
    elif script and os.path.lexists(script) and _same(path, script):
        what = "is the flow file being run"
    else:
        try:
            mode = os.stat(path).st_mode
        except OSError:
            mode = None
        if mode is not None and not stat.S_ISREG(mode):
            what = "exists and is not a regular file"
    if what is None:
        return None
    return (
        f"--run-id-file {path!r} {what}; the run id would be written over it: pass a new "
        "file name (or an earlier run-id file) instead. Nothing ran."
    )


def _same(path: str, other: str) -> bool:
    try:
        return os.path.samefile(path, other)
    except OSError:
        return os.path.realpath(path) == os.path.realpath(other)


def write_run_id(path: str, run_id: int) -> None:
    """Write ``run_id`` to ``path``; a failure is one warning line on stderr."""
    try:
        # O_NONBLOCK: a pipe put there after the check fails at once instead of waiting.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NONBLOCK, 0o666)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(str(run_id))
    except OSError as exc:
        print(
            f"warning: cannot write the run id to {path!r} (--run-id-file): {exc}", file=sys.stderr
        )
