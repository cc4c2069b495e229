"""The read plan of a resume: the origin run, its tasks with their output, their complete
artifact mappings and earlier attempts, in one snapshot (see ``_plans``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._plans import Plan, Query, checked, names
from ._queries import run, runs
from ._rows import RunRow

__all__ = ["OriginTaskRow", "ResumeSource", "resume_source"]

ORIGIN_TASKS = (
    "SELECT id, step, path, status, started_at, finished_at, stdout, stderr, exception, "
    "traceback, attempt FROM tasks WHERE run_id = ?"
)
# Only tasks that went on (succeeded, or failed and were caught) can be cloned; failed and
# cancelled tasks have no artifact rows anyway.
ORIGIN_ARTIFACTS = (
    "SELECT a.task_id, a.name, a.sha FROM artifacts AS a JOIN tasks AS t "
    "ON t.run_id = a.run_id AND t.id = a.task_id "
    "WHERE a.run_id = ? AND t.status IN ('succeeded', 'caught')"
)
# The cards of the tasks that can be cloned (a clone keeps its origin's cards).
ORIGIN_CARDS = (
    "SELECT c.task_id, c.idx, c.card_id, c.type, c.sha FROM cards AS c JOIN tasks AS t "
    "ON t.run_id = c.run_id AND t.id = c.task_id "
    "WHERE c.run_id = ? AND t.status IN ('succeeded', 'caught') ORDER BY c.task_id, c.idx"
)
ORIGIN_ATTEMPTS = (
    "SELECT task_id, attempt, status, started_at, finished_at, stdout, stderr, exception, "
    "traceback FROM attempts WHERE run_id = ? ORDER BY task_id, attempt"
)


_ORIGIN_NAMES = names(ORIGIN_TASKS.split("FROM")[0].removeprefix("SELECT"))


@dataclass(frozen=True, slots=True)
class OriginTaskRow:
    """One task of a run being resumed: its full row, output included."""

    id: int
    step: str
    path: str
    status: str
    started_at: float
    finished_at: float
    stdout: str | None
    stderr: str | None
    exception: str | None
    traceback: str | None
    attempt: int


@dataclass(frozen=True, slots=True)
class ResumeSource:
    """What a resume needs from its origin run, read in one snapshot.

    :param run: the origin's run record.
    :param tasks: every task row of the origin.
    :param refs: task id -> complete artifact mapping, for the tasks that went on
        (``succeeded`` or ``caught``).
    :param attempts: task id -> its earlier attempts' rows (``attempts`` columns after
        ``task_id``), first to last.
    :param cards: task id -> its cards (index, id, type, sha), for the tasks that went on.
    """

    run: RunRow
    tasks: list[OriginTaskRow]
    refs: dict[int, dict[str, bytes]]
    attempts: dict[int, list[tuple[Any, ...]]]
    cards: dict[int, list[tuple[int, str | None, str, bytes]]]


def resume_source(flow: str, run_id: int | None) -> Plan[ResumeSource | None]:
    """The run ``run_id`` of ``flow`` (its latest run if None), its tasks and their artifacts.

    Returns None when there is no such run.
    """
    if run_id is None:
        found = yield from runs(flow, limit=1)
        row = found[0] if found else None
    else:
        row = yield from run(flow, run_id)
    if row is None:
        return None
    task_rows = checked("tasks", _ORIGIN_NAMES, (yield Query(ORIGIN_TASKS, (row.id,))))
    tasks = [
        OriginTaskRow(
            id=int(r[0]),
            step=r[1],
            path=r[2],
            status=r[3],
            started_at=r[4],
            finished_at=r[5],
            stdout=r[6],
            stderr=r[7],
            exception=r[8],
            traceback=r[9],
            attempt=int(r[10] or 0),
        )
        for r in task_rows
    ]
    refs: dict[int, dict[str, bytes]] = {}
    for task_id, name, sha in (yield Query(ORIGIN_ARTIFACTS, (row.id,))):
        refs.setdefault(int(task_id), {})[name] = bytes(sha)
    attempts: dict[int, list[tuple[Any, ...]]] = {}
    for task_id, *rest in (yield Query(ORIGIN_ATTEMPTS, (row.id,))):
        attempts.setdefault(int(task_id), []).append(tuple(rest))
    cards: dict[int, list[tuple[int, str | None, str, bytes]]] = {}
    card_rows = checked(
        "cards",
        ("task_id", "idx", "card_id", "type", "sha"),
        (yield Query(ORIGIN_CARDS, (row.id,))),
    )
    for task_id, idx, card_id, kind, sha in card_rows:
        cards.setdefault(int(task_id), []).append((int(idx), card_id, kind, bytes(sha)))
    return ResumeSource(row, tasks, refs, attempts, cards)
