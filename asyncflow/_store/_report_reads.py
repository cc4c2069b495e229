"""Read plans for the run report (``_report``): what a report shows of many tasks at once.

A report of a 10,000-task foreach must not read task by task: these plans read the attempts
of a whole run, and the output, artifacts and cards of a chosen set of tasks, in batched
queries (``BATCH`` ids a query). Captured output is cut in SQL (``substr``), so a task that
printed a gigabyte costs the report a few kilobytes. Blob *headers* (encoding, meta, size)
are read without their payload, so a value too large to preview is never read at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ._plans import BATCH, Plan, Query, checked, marks
from ._rows import ArtifactRow

__all__ = [
    "AttemptTimes",
    "BlobHead",
    "LogCut",
    "TaskExtras",
    "attempt_times",
    "blob_heads",
    "task_extras",
]


@dataclass(frozen=True, slots=True)
class AttemptTimes:
    """One earlier attempt of a task (the ``attempts`` table), without its output."""

    attempt: int
    status: str
    started_at: float
    finished_at: float


@dataclass(frozen=True, slots=True)
class LogCut:
    """What a task printed to one stream, cut: its first and last characters, and the
    length of the whole (nothing was cut when ``len(head) + len(tail) == length``)."""

    head: str
    tail: str
    length: int


@dataclass(frozen=True, slots=True)
class TaskExtras:
    """What a report shows of one task beyond its row: output, artifacts, cards."""

    stdout: LogCut
    stderr: LogCut
    artifacts: tuple[ArtifactRow, ...]
    cards: tuple[tuple[int, str | None, str, bytes], ...]


@dataclass(frozen=True, slots=True)
class BlobHead:
    """A blob's row without its payload: enough to decide whether to read it."""

    sha: bytes
    encoding: str
    meta: bytes | None
    size: int


ATTEMPTS_OF_RUN = (
    "SELECT task_id, attempt, status, started_at, finished_at FROM attempts "
    "WHERE run_id = ? ORDER BY task_id, attempt"
)
# The first ``head`` characters of each stream, the last ``tail`` of the rest (never
# overlapping the head), and its whole length (in characters).
_HEAD_TAIL = "substr({c}, 1, ?1), substr({c}, max(?1 + 1, length({c}) - ?2 + 1)), length({c})"
LOGS_OF_TASKS = (
    f"SELECT id, {_HEAD_TAIL.format(c='stdout')}, {_HEAD_TAIL.format(c='stderr')} "
    "FROM tasks WHERE run_id = ?3 AND id IN ({marks})"
)
ARTIFACTS_OF_TASKS = (
    "SELECT a.task_id, a.name, a.sha, coalesce(b.encoding, ''), coalesce(b.size, 0) "
    "FROM artifacts AS a LEFT JOIN blobs AS b ON b.sha = a.sha "
    "WHERE a.run_id = ? AND a.task_id IN ({marks}) ORDER BY a.task_id, a.name"
)
CARDS_OF_TASKS = (
    "SELECT task_id, idx, card_id, type, sha FROM cards "
    "WHERE run_id = ? AND task_id IN ({marks}) ORDER BY task_id, idx"
)
BLOB_HEADS = "SELECT sha, encoding, meta, size FROM blobs WHERE sha IN ({marks})"


def attempt_times(run_id: int) -> Plan[dict[int, list[AttemptTimes]]]:
    """The earlier attempts of every task of a run that was retried, by task id."""
    rows = yield Query(ATTEMPTS_OF_RUN, (run_id,))
    columns = ("task_id", "attempt", "status", "started_at", "finished_at")
    out: dict[int, list[AttemptTimes]] = {}
    for task_id, attempt, status, started, finished in checked("attempts", columns, rows):
        out.setdefault(int(task_id), []).append(
            AttemptTimes(int(attempt), status, float(started), float(finished))
        )
    return out


def _text(value: object) -> str:
    # A damaged store may hold a blob where text is; a report shows nothing rather than fail.
    return value if isinstance(value, str) else ""


def _cut(head: object, tail: object, length: object) -> LogCut:
    first, last = _text(head), _text(tail)
    whole = length if isinstance(length, int) else 0
    return LogCut(first, last, max(whole, len(first) + len(last)))


def task_extras(
    run_id: int, task_ids: Sequence[int], head_chars: int, tail_chars: int
) -> Plan[dict[int, TaskExtras]]:
    """The output (cut to ``head_chars`` first and ``tail_chars`` last characters of each
    stream), artifacts (names and blob rows, no value) and card rows of tasks ``task_ids``.

    A stream of at most ``head_chars + tail_chars`` characters is whole (head and tail).
    """
    logs: dict[int, tuple[LogCut, LogCut]] = {}
    arts: dict[int, list[ArtifactRow]] = {}
    cards: dict[int, list[tuple[int, str | None, str, bytes]]] = {}
    ids = list(dict.fromkeys(task_ids))
    for start in range(0, len(ids), BATCH):
        batch = tuple(ids[start : start + BATCH])
        rows = yield Query(
            LOGS_OF_TASKS.format(marks=marks(len(batch))),
            (head_chars, tail_chars, run_id, *batch),
        )
        for task_id, oh, ot, ol, eh, et, el in rows:
            logs[int(task_id)] = (_cut(oh, ot, ol), _cut(eh, et, el))
        rows = yield Query(ARTIFACTS_OF_TASKS.format(marks=marks(len(batch))), (run_id, *batch))
        checked("artifacts", ("task_id", "name", "sha"), [row[:3] for row in rows])
        for task_id, name, sha, encoding, size in rows:
            arts.setdefault(int(task_id), []).append(
                ArtifactRow(name, bytes(sha), str(encoding), int(size))
            )
        rows = yield Query(CARDS_OF_TASKS.format(marks=marks(len(batch))), (run_id, *batch))
        checked("cards", ("task_id", "idx", "card_id", "type", "sha"), rows)
        for task_id, idx, card_id, kind, sha in rows:
            cards.setdefault(int(task_id), []).append((int(idx), card_id, kind, bytes(sha)))
    empty = LogCut("", "", 0)
    return {
        task_id: TaskExtras(
            *logs.get(task_id, (empty, empty)),
            tuple(arts.get(task_id, ())),
            tuple(cards.get(task_id, ())),
        )
        for task_id in ids
    }


def blob_heads(shas: Sequence[bytes]) -> Plan[dict[bytes, BlobHead]]:
    """The rows of blobs ``shas`` without their payload; a missing blob is left out."""
    unique = list(dict.fromkeys(shas))
    out: dict[bytes, BlobHead] = {}
    for start in range(0, len(unique), BATCH):
        batch = tuple(unique[start : start + BATCH])
        rows = yield Query(BLOB_HEADS.format(marks=marks(len(batch))), batch)
        for sha, encoding, meta, size in rows:
            if isinstance(encoding, str) and isinstance(size, int):
                meta_bytes = bytes(meta) if isinstance(meta, bytes) else None
                out[bytes(sha)] = BlobHead(bytes(sha), encoding, meta_bytes, size)
    return out
