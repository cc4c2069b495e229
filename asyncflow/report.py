"""Run reports: one self-contained HTML file of a run, to look at or to share.

The page holds everything (no URL is fetched when it is opened): the run's status,
parameters, tags and timing, its graph, a timeline of every task, and per task its artifacts
(previews), output, error and cards. Make one from Python::

    from asyncflow import Run
    from asyncflow.report import write_report

    write_report(Run("TrainFlow/12", store="runs.db"), "run.html")
    write_report("TrainFlow/12", "run.html", store="runs.db")    # the same, by pathspec

or from the shell: ``asyncflow report TrainFlow/12 -o run.html --store runs.db`` (also
``--archive FILE``, to report a run straight from a run archive without importing it).

Every function reads the run as stored now: a run still going gives its tasks so far. The
awaitable twins (``awrite_report``, ``arender_report``, ``areport_model``) do the reading
and rendering in a worker thread, so the event loop is never held up. Values are loaded by
the client's safe-loading rules: a pickled value of a run you do not trust (an archive from
elsewhere, say) is never unpickled; its preview says how to trust it. See README ("Run
reports") for what a report holds and its limits.
"""

from __future__ import annotations

import os
import stat
from typing import Any

import anyio.to_thread

from ._client import Run
from ._errors import UsageError
from ._store._paths import is_store_file
from ._store._replace import write_replacing

__all__ = [
    "arender_report",
    "areport_model",
    "awrite_report",
    "render_report",
    "report_model",
    "write_report",
]

RunLike = Run | str
PathLike = str | os.PathLike[str]


def _run_of(run: object, store: PathLike | None, trust: bool) -> Run:
    if isinstance(run, Run):
        return run
    if isinstance(run, str):
        return Run(run, None if store is None else os.fspath(store), trust=trust)
    raise UsageError(
        f"a report is of one run: pass a Run (such as Flow(name)[run_id]) or a run pathspec "
        f"'Flow/run_id' (with store=), not {type(run).__name__} {run!r:.60}",
        "run",
    )


def report_model(
    run: RunLike, *, store: PathLike | None = None, trust: bool = False
) -> dict[str, Any]:
    """The plain-data model a report is drawn from (JSON-able; schema in the docstring of
    ``asyncflow._report._model``): for tools that want the report's content, not its page.

    :param run: a :class:`~asyncflow.Run`, or a run pathspec ``"Flow/12"`` read from ``store``.
    :param store: the store or run archive of a pathspec (None: the default store).
    :param trust: for a pathspec, load the run's pickled values whoever wrote them (as
        ``Flow(name, store, trust=True)``): only for runs whose author you trust.
    :raises UsageError: ``run`` is neither a Run nor a run pathspec.
    :raises NotFoundError: no such run.
    :raises StoreError: the store or archive cannot be read.
    """
    from ._report._model import build_model

    return build_model(_run_of(run, store, trust))


def render_report(run: RunLike, *, store: PathLike | None = None, trust: bool = False) -> str:
    """The report of ``run``: one self-contained HTML page, as text.

    :param run: as :func:`report_model`.
    :raises UsageError: ``run`` is neither a Run nor a run pathspec.
    :raises NotFoundError: no such run.
    :raises StoreError: the store or archive cannot be read.
    """
    from ._report._page import render_page

    return render_page(report_model(run, store=store, trust=trust))


def write_report(
    run: RunLike,
    path: PathLike,
    *,
    store: PathLike | None = None,
    trust: bool = False,
    overwrite: bool = False,
) -> str:
    """Write the report of ``run`` to the new file ``path`` (UTF-8 HTML); return its path.

    The page is written beside ``path`` and moved there when complete, so a failed write
    leaves no half file.

    :param run: as :func:`report_model`.
    :param overwrite: replace ``path`` if it is a file already.
    :raises UsageError: ``run`` is neither a Run nor a run pathspec; ``path`` is the store
        (or archive) the run is read from, or one of its side files; ``path`` exists (without
        ``overwrite``) or is not a regular file; or the file cannot be written there.
    :raises NotFoundError: no such run.
    :raises StoreError: the store or archive cannot be read.
    """
    target = os.fspath(path)
    found = _run_of(run, store, trust)
    refuse_target(target, overwrite, found.parent.store, "overwrite=True")
    return write_text(target, render_report(found), overwrite, found.parent.store)


async def areport_model(
    run: RunLike, *, store: PathLike | None = None, trust: bool = False
) -> dict[str, Any]:
    """The awaitable twin of :func:`report_model` (reads in a worker thread)."""
    return await anyio.to_thread.run_sync(lambda: report_model(run, store=store, trust=trust))


async def arender_report(
    run: RunLike, *, store: PathLike | None = None, trust: bool = False
) -> str:
    """The awaitable twin of :func:`render_report` (reads and renders in a worker thread)."""
    return await anyio.to_thread.run_sync(lambda: render_report(run, store=store, trust=trust))


async def awrite_report(
    run: RunLike,
    path: PathLike,
    *,
    store: PathLike | None = None,
    trust: bool = False,
    overwrite: bool = False,
) -> str:
    """The awaitable twin of :func:`write_report` (reads, renders and writes in a worker
    thread)."""
    return await anyio.to_thread.run_sync(
        lambda: write_report(run, path, store=store, trust=trust, overwrite=overwrite)
    )


# --- writing the file ----------------------------------------------------------------------


def refuse_target(path: str, overwrite: bool, store: str, replace_with: str) -> None:
    """Raise unless a report may be written at ``path``: a new name, or (with ``overwrite``)
    a regular file that is not ``store`` nor one of its side files.

    :param replace_with: how the caller asks to replace a file (``"overwrite=True"``,
        ``"--force"``), for the message.
    :raises UsageError: it may not.
    """
    if path == "":
        raise UsageError(
            "the report's file name is empty ('' names no file): give the name of the HTML "
            "file to write, such as run.html",
            "path",
        )
    if is_store_file(path, store):
        raise UsageError(
            f"cannot write the report to {path!r}: it is the store or archive the run is read "
            "from (or one of its side files, which SQLite reads as part of it even before "
            "they exist); a report never writes there: choose another name, such as run.html",
            "path",
        )
    if not os.path.lexists(path):
        return
    if not stat.S_ISREG(os.lstat(path).st_mode):
        raise UsageError(
            f"cannot write the report to {path!r}: it exists and is not a regular file (a "
            "folder, a link, a pipe or a device), which a report never replaces: choose "
            "another name",
            "path",
        )
    if not overwrite:
        raise UsageError(
            f"cannot write the report to {path!r}: the file exists already; choose another "
            f"name, or pass {replace_with} to replace it",
            "path",
        )


def write_text(
    path: str, text: str, overwrite: bool, store: str, replace_with: str = "overwrite=True"
) -> str:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file beside it; return the
    path. Checks the target again just before (see :func:`refuse_target`).

    :raises UsageError: the target may not be written, or the write failed (the message
        says why; nothing is left behind).
    """
    refuse_target(path, overwrite, store, replace_with)
    data = text.encode("utf-8", "replace")
    try:
        write_replacing(path, lambda fh: fh.write(data), prefix=".report-", suffix=".html")
    except OSError as exc:
        raise UsageError(
            f"cannot write the report to {path!r}: {exc.strerror or exc}; write it to a folder "
            "that exists and that you may write, on a disk with room (nothing was written)",
            "path",
        ) from exc
    return path
