"""What the client says when something is missing: each message names it and what exists."""

from __future__ import annotations

import time
from collections.abc import Sequence

from .._errors import ArtifactNotFoundError, NotFoundError, shown
from .._store._plans import Plan, Query
from .._store._queries import run, run_ids
from .._store._records import MAX_ID
from .._store._runids import DELETED_KEY, parse_deleted

__all__ = [
    "bad_run_id",
    "listing",
    "missing_artifact",
    "missing_run",
    "missing_run_plan",
    "missing_step",
    "missing_task",
    "no_end_task",
    "run_gone_plan",
    "unknown_flow",
]

_SHOWN = 20


def listing(items: Sequence[str], limit: int = _SHOWN, total: int | None = None) -> str:
    """``a, b, c``; past ``limit`` items, the first ones and how many more; ``(none)`` if empty.

    :param total: the number of items in all, when ``items`` holds only the first ones.
    """
    total = len(items) if total is None else total
    if total == 0:
        return "(none)"
    shown = ", ".join(items[:limit])
    rest = total - min(len(items), limit)
    return f"{shown} and {rest} more" if rest > 0 else shown


def unknown_flow(name: str, path: str, flows: Sequence[str]) -> NotFoundError:
    """No run of flow ``name`` is in the store."""
    if not flows:
        return NotFoundError(
            f"there is no flow {shown(name)} in the store {path!r}: it holds no runs yet. "
            "Run the flow with this store first, or pass store= pointing at another file."
        )
    return NotFoundError(
        f"there is no flow {shown(name)} in the store {path!r}; its flows are: "
        f"{listing(flows)}. Check the name (it is the flow's class name) or the store path."
    )


def bad_run_id(flow: str, run_id: object) -> NotFoundError:
    """``run_id`` is not a run id at all."""
    return NotFoundError(
        f"{shown(run_id)} is not a run id of {flow}: run ids are whole numbers, like '12' or 12."
    )


def missing_run_plan(
    flow: str, run_id: int, path: str, shown: object = None
) -> Plan[NotFoundError]:
    """Read what :func:`missing_run` needs (the recent runs, gc's note) and build it.

    :param shown: the id as the caller gave it, shown (cut short) for an id past any run's.
    """
    recent, total = yield from run_ids(flow, 10)
    note = yield Query("SELECT value FROM store_info WHERE key = ?", (f"{DELETED_KEY}{run_id}",))
    deleted_at = parse_deleted(note[0][0], flow) if note else None
    if run_id > MAX_ID and shown is not None:
        try:
            text = str(shown).strip()
        except ValueError:  # an int of more digits than Python will print
            text = "a number past 2**63 - 1"
        return missing_run(
            flow, text if len(text) <= 40 else text[:20] + "...", path, recent, total
        )
    return missing_run(flow, run_id, path, recent, total, deleted_at)


def run_gone_plan(flow: str, run_id: int, path: str) -> Plan[NotFoundError | None]:
    """The error to raise when run ``run_id`` of ``flow`` is no longer in the store (gc
    deleted it after it was opened), else None. A read that finds nothing asks this first, so
    that it never blames the run ("no artifact", "did not reach its end step", an empty log)
    for what gc did."""
    if (yield from run(flow, run_id)) is not None:
        return None
    return (yield from missing_run_plan(flow, run_id, path))


def missing_run(
    flow: str,
    run_id: int | str,
    path: str,
    recent: Sequence[int],
    total: int,
    deleted_at: float | None = None,
) -> NotFoundError:
    """Run ``run_id`` of ``flow`` does not exist (``deleted_at``: gc deleted it then)."""
    ids = [str(i) for i in recent]
    if deleted_at is not None:
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(deleted_at))
        return NotFoundError(
            f"run {flow}/{run_id} was deleted from the store {path!r} by asyncflow gc on "
            f"{when} (run ids are never reused); its runs, newest first: "
            f"{listing(ids, total=total)}. Restore the store from a copy made before to read "
            "it again, and tag the runs you want to keep with 'keep' so gc keeps them."
        )
    return NotFoundError(
        f"flow {flow} has no run {run_id} in the store {path!r}; its runs, newest first: "
        f"{listing(ids, total=total)}. Use one of those ids, or check the store path."
    )


def missing_step(
    run: str, step: str, status: str, steps: Sequence[str], planned: bool
) -> NotFoundError:
    """Step ``step`` has no task in run ``run`` (a pathspec)."""
    why = (
        f"step {shown(step)} of {run} has no finished task (run status: {status})"
        if planned
        else f"run {run} has no step {shown(step)}"
    )
    return NotFoundError(
        f"{why}; steps with tasks: {listing(steps)}. Read one of those steps instead"
        + (", or check the spelling." if not planned else ".")
    )


def missing_task(step: str, task_id: object, task_ids: Sequence[str]) -> NotFoundError:
    """Step ``step`` (a pathspec) has no task ``task_id``."""
    return NotFoundError(
        f"step {step} has no task {shown(task_id)}; its tasks: {listing(task_ids)}. Use one of "
        "those task ids (step.task is the first one)."
    )


def missing_artifact(task: str, name: str, names: Sequence[str]) -> ArtifactNotFoundError:
    """Task ``task`` (a pathspec) has no artifact ``name``."""
    return ArtifactNotFoundError(
        f"task {task} has no artifact {shown(name)}; its artifacts: {listing(names, limit=50)}. "
        "Check the spelling, or read it from a task of the step that set it."
    )


def no_end_task(run: str, status: str, steps: Sequence[str]) -> ArtifactNotFoundError:
    """Run ``run`` (a pathspec) never finished its end step, so it has no run-level data."""
    return ArtifactNotFoundError(
        f"run {run} has no data: it did not reach its end step (run status: {status}). Read "
        f"the data of a step that ran instead, e.g. run['<step>'].data; steps with tasks: "
        f"{listing(steps)}."
    )
