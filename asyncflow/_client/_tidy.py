"""Keeping a store tidy: ``gc`` / ``agc`` delete old runs and their blobs; ``stats`` /
``astats`` count what a store holds. (Tags on existing runs are methods of ``Run``.)

The blocking forms do their I/O in the calling thread; the awaitable twins run the same
function in a worker thread (gc) or read through the async driver (stats), so the event
loop never waits on SQLite.
"""

from __future__ import annotations

import functools
import math
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import anyio.to_thread

from .._errors import UsageError
from .._spec._tags import normalize_tags
from .._store._gc import GcCriteria, GcOutcome, collect_garbage
from .._store._lease import crashed_reason
from .._store._paths import resolve_store_path
from .._store._records import parse_json
from .._store._tidy import StatsRows, file_bytes
from .._store._tidy import stats as stats_plan
from ._flow import check_plan
from ._handle import StoreHandle

__all__ = ["GcReport", "StoreStats", "agc", "astats", "gc", "parse_age", "stats"]

StorePath = str | os.PathLike[str] | None
Age = timedelta | float | int | str

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_AGE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhdw]?)\s*", re.IGNORECASE)


# --- the reports -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GcReport:
    """What :func:`gc` deleted, or with ``dry_run=True`` would delete.

    :param store: the store file (absolute path).
    :param deleted: pathspecs (``Flow/run``) of the runs deleted, oldest first.
    :param skipped: pathspecs of runs the criteria selected but gc kept: they carry a
        protected tag, are live (running: their lease has not expired, or their process on
        this host is alive) or are the origin of a live resumed run.
    :param blobs_deleted: stored values deleted because no remaining run references them.
    :param bytes_freed: their payload bytes (before SQLite's own overhead).
    :param size_before: bytes the store took on disk before (the file and its ``-wal``).
    :param size_after: bytes it takes after (equal to ``size_before`` in a dry run).
    :param dry_run: True if nothing was changed.
    :param note: why the file could not shrink yet, if so (the space is reused anyway).
    :param skipped_why: for each pathspec in ``skipped``, why it was kept (e.g.
        ``"tagged 'keep', a protected tag"``).
    """

    store: str
    deleted: tuple[str, ...]
    skipped: tuple[str, ...]
    blobs_deleted: int
    bytes_freed: int
    size_before: int
    size_after: int
    dry_run: bool
    note: str | None = None
    skipped_why: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StoreStats:
    """What a store holds, from :func:`stats`.

    :param store: the store file (absolute path).
    :param flows: flows with at least one run.
    :param runs: run status -> number of runs; ``"crashed"`` for runs recorded as running
        whose process is gone (judged by their lease, like ``Run.status``).
    :param tasks: task rows (a resumed run's clones included).
    :param artifacts: artifact rows, each a (task, name) -> value reference.
    :param blobs: distinct stored values.
    :param stored_bytes: payload bytes of every stored value, each counted once.
    :param referenced_bytes: the payload bytes that every artifact, parameter and card row
        references, counted once per row: what the runs would take without deduplication.
    :param file_bytes: bytes on disk: the store file and its ``-wal``.
    :param reclaimable_bytes: free pages inside the file (``asyncflow gc`` gives them back
        to the file system, or later writes reuse them).
    :param archive: the manifest of a run archive (a read-only store made by export);
        None for an ordinary store.
    """

    store: str
    flows: int
    runs: dict[str, int]
    tasks: int
    artifacts: int
    blobs: int
    stored_bytes: int
    referenced_bytes: int
    file_bytes: int
    reclaimable_bytes: int
    archive: dict[str, Any] | None = None

    @property
    def total_runs(self) -> int:
        """Runs of every status."""
        return sum(self.runs.values())

    @property
    def dedup_ratio(self) -> float:
        """``referenced_bytes / stored_bytes``: how many times over deduplication saves
        (1.0 when nothing is stored)."""
        return self.referenced_bytes / self.stored_bytes if self.stored_bytes else 1.0

    def to_json(self) -> dict[str, Any]:
        """The figures as a JSON-ready dict (``dedup_ratio`` and ``total_runs`` included)."""
        return {
            "store": self.store,
            "flows": self.flows,
            "runs": dict(self.runs),
            "total_runs": self.total_runs,
            "tasks": self.tasks,
            "artifacts": self.artifacts,
            "blobs": self.blobs,
            "stored_bytes": self.stored_bytes,
            "referenced_bytes": self.referenced_bytes,
            "dedup_ratio": round(self.dedup_ratio, 4),
            "file_bytes": self.file_bytes,
            "reclaimable_bytes": self.reclaimable_bytes,
            "archive": self.archive,
        }


# --- arguments -------------------------------------------------------------------------------


def parse_age(value: Age) -> float:
    """An age in seconds, from a timedelta, a number of seconds, or text such as ``"90s"``,
    ``"30m"``, ``"12h"``, ``"7d"`` or ``"2w"`` (a bare number is seconds).

    :raises UsageError: anything else, or a negative or infinite age.
    """
    seconds: float | None = None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        found = _AGE.fullmatch(value)
        if found:
            seconds = float(found.group(1)) * _UNITS[found.group(2).lower() or "s"]
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        raise UsageError(
            f"older_than={value!r} is not an age; pass a timedelta, a number of seconds, or "
            "text such as '30m', '12h', '7d' or '2w' (s, m, h, d, w: seconds to weeks).",
            "older_than",
        )
    return seconds


#: The tags gc protects unless told otherwise: a run tagged ``keep`` is never deleted.
DEFAULT_PROTECT: tuple[str, ...] = ("keep",)


def _protect(protect: Sequence[str] | str | None) -> tuple[str, ...]:
    if protect is None:
        return DEFAULT_PROTECT
    try:
        return normalize_tags(protect)
    except TypeError as exc:
        raise UsageError(
            f"protect={protect!r} is not a list of tags ({exc}); pass tags such as "
            "protect=('keep', 'paper'), or protect=() to protect none.",
            "protect",
        ) from exc


def _criteria(
    flow: str | None,
    keep_last: int | None,
    older_than: Age | None,
    tag: str | None,
    protect: Sequence[str] | str | None = None,
) -> GcCriteria:
    if keep_last is None and older_than is None and tag is None:
        raise UsageError(
            "gc needs at least one of keep_last, older_than or tag (--keep-last, --older-than, "
            "--tag on the command line), so that it never deletes every run by accident; "
            "pass e.g. keep_last=10, older_than='30d' or tag='scratch'."
        )
    if keep_last is not None and (
        isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1
    ):
        raise UsageError(
            f"keep_last={keep_last!r} must be a whole number >= 1: how many of each flow's "
            "newest runs to keep (to select every run, pass older_than=0 instead).",
            "keep_last",
        )
    before = None if older_than is None else time.time() - parse_age(older_than)
    return GcCriteria(
        flow=None if flow is None else str(flow),
        keep_last=keep_last,
        created_before=before,
        tag=None if tag is None else normalize_tags(tag)[0],
        protect=_protect(protect),
    )


# --- gc --------------------------------------------------------------------------------------


def gc(
    store: StorePath = None,
    *,
    flow: str | None = None,
    keep_last: int | None = None,
    older_than: Age | None = None,
    tag: str | None = None,
    dry_run: bool = False,
    protect: Sequence[str] | str | None = None,
) -> GcReport:
    """Delete runs, then every stored value no remaining run references, and shrink the file.

    The criteria combine (a run must meet all that are given), and at least one of
    ``keep_last``, ``older_than`` and ``tag`` is required. Never deleted, whatever the
    criteria: a run carrying a protected tag (``keep`` by default), a live run (running:
    its lease has not expired, or its process on this host is alive) and the run a live
    resumed run started from; selected ones are listed in :attr:`GcReport.skipped`, with the
    reason in :attr:`GcReport.skipped_why`. Everything is deleted in one transaction, so
    another process writing to the store meanwhile loses nothing.

    :param store: the store file; None means the default store (``$ASYNCFLOW_STORE``, else
        the nearest ``asyncflow.db`` in the current directory or a parent).
    :param flow: consider only this flow's runs.
    :param keep_last: keep each flow's ``keep_last`` newest runs (by id, at least 1);
        select the rest.
    :param older_than: select runs created longer ago than this: a timedelta, seconds, or
        text such as ``"30m"``, ``"12h"``, ``"7d"``, ``"2w"``.
    :param tag: select runs carrying this tag.
    :param dry_run: decide and report, but change nothing.
    :param protect: the protected tags; None means ``("keep",)``. Giving tags replaces the
        default (include ``"keep"`` to keep protecting it); ``()`` protects none.
    :raises UsageError: no criterion, or a criterion that is not valid.
    :raises NotFoundError: ``flow`` has no run in the store.
    :raises StoreError: no store there, the store is a run archive (read-only), or it cannot
        be written.
    """
    criteria = _criteria(flow, keep_last, older_than, tag, protect)
    path = os.path.abspath(resolve_store_path(store))
    if criteria.flow is not None:
        _check_flow(path, criteria.flow)
    outcome = collect_garbage(path, criteria, dry_run=dry_run)
    return _report(path, outcome, dry_run)


async def agc(
    store: StorePath = None,
    *,
    flow: str | None = None,
    keep_last: int | None = None,
    older_than: Age | None = None,
    tag: str | None = None,
    dry_run: bool = False,
    protect: Sequence[str] | str | None = None,
) -> GcReport:
    """The awaitable twin of :func:`gc`; the work runs in a worker thread.

    :raises UsageError: no criterion, or a criterion that is not valid.
    :raises NotFoundError: ``flow`` has no run in the store.
    :raises StoreError: no store there, the store is a run archive, or it cannot be written.
    """
    _criteria(flow, keep_last, older_than, tag, protect)  # bad arguments fail before a thread
    call = functools.partial(
        gc,
        store,
        flow=flow,
        keep_last=keep_last,
        older_than=older_than,
        tag=tag,
        dry_run=dry_run,
        protect=protect,
    )
    return await anyio.to_thread.run_sync(call)


def _check_flow(path: str, flow: str) -> None:
    handle = StoreHandle(path)
    try:
        handle.run(check_plan(flow, path))
    finally:
        handle.close()


def _report(path: str, outcome: GcOutcome, dry_run: bool) -> GcReport:
    return GcReport(
        store=path,
        deleted=tuple(f"{r.flow}/{r.id}" for r in outcome.deleted),
        skipped=tuple(f"{s.run.flow}/{s.run.id}" for s in outcome.skipped),
        blobs_deleted=outcome.blobs,
        bytes_freed=outcome.blob_bytes,
        size_before=outcome.size_before,
        size_after=outcome.size_after,
        dry_run=dry_run,
        note=outcome.note,
        skipped_why={f"{s.run.flow}/{s.run.id}": s.reason for s in outcome.skipped},
    )


# --- stats -----------------------------------------------------------------------------------


def stats(store: StorePath = None) -> StoreStats:
    """Count what a store holds: flows, runs by status, tasks, artifacts, values and bytes.

    :param store: the store file (or a run archive); None means the default store
        (``$ASYNCFLOW_STORE``, else the nearest ``asyncflow.db`` here or in a parent).
    :raises StoreError: there is no store file there, or it cannot be read.
    :raises StoreFormatError: the file is not an asyncflow store, or is from a newer one.
    """
    handle = StoreHandle(resolve_store_path(store))
    try:
        rows = handle.run(stats_plan())
    finally:
        handle.close()
    return _stats(handle.path, rows)


async def astats(store: StorePath = None) -> StoreStats:
    """The awaitable twin of :func:`stats`.

    :raises StoreError: there is no store file there, or it cannot be read.
    :raises StoreFormatError: the file is not an asyncflow store, or is from a newer one.
    """
    handle = StoreHandle(resolve_store_path(store))
    rows = await handle.arun(stats_plan())
    # Judging leases and sizing files touch the file system: not on the event loop.
    return await anyio.to_thread.run_sync(_stats, handle.path, rows)


def _stats(path: str, rows: StatsRows) -> StoreStats:
    runs = dict(rows.by_status)
    for pid, host, heartbeat in rows.running:
        status = "running" if crashed_reason("running", pid, host, heartbeat) is None else "crashed"
        runs[status] = runs.get(status, 0) + 1
    archive: dict[str, Any] | None = None
    if rows.archive is not None:
        try:
            found = parse_json(rows.archive)
        except ValueError:
            found = None
        archive = found if isinstance(found, dict) else {"manifest": rows.archive}
    return StoreStats(
        store=path,
        flows=rows.flows,
        runs=dict(sorted(runs.items())),
        tasks=rows.tasks,
        artifacts=rows.artifacts,
        blobs=rows.blobs,
        stored_bytes=rows.stored_bytes,
        referenced_bytes=rows.referenced_bytes,
        file_bytes=file_bytes(path),
        reclaimable_bytes=rows.free_pages * rows.page_size,
        archive=archive,
    )
