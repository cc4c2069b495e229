"""A run's events: the public classes (re-exported by ``asyncflow.events``), their compact
in-memory form, and the encoding of the ``events`` table.

Three forms of one event:

* an *item*, the tuple the runtime makes and the writer stores: ``(seq, code, at_us,
  *fields)``. ``at_us`` is integer microseconds since the Unix epoch and every field is a
  plain int, str, None or tuple of str, so an item costs one small tuple to make and
  nothing to keep, and the live stream and the stored one are equal to the bit;
* a *chunk*, one row of ``events``: the items of one run committed in one writer batch,
  with consecutive seqs, as ``msgpack([t0_us, [code, at_us - t0_us, *fields], ...])``; the
  row's ``seq`` column is the first item's seq;
* an :class:`Event` object, made from an item (:func:`make_event`) only when a reader asks.

Task events store the step and the task id, not the pathspec: the reader knows the flow and
run. A chunk read from a file is data from anywhere: :func:`decode_chunk` checks every value
and raises ``ValueError`` (never anything else) for what asyncflow would not have written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import msgpack

from ._records import TIME_RANGE

__all__ = [
    "RUN_STATUSES",
    "TASK_STATUSES",
    "Event",
    "Item",
    "LogLine",
    "RunFinished",
    "RunStarted",
    "StepProgress",
    "TaskFinished",
    "TaskRetrying",
    "TaskStarted",
    "decode_chunk",
    "encode_chunks",
    "make_event",
    "refinished",
]

Item = tuple[Any, ...]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
RUN_STATUSES = ("succeeded", "failed", "cancelled")
TASK_STATUSES = ("succeeded", "failed", "caught", "cancelled")
STREAMS = ("stdout", "stderr")


def _when(at_us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=at_us)


@dataclass(frozen=True, slots=True)
class Event:
    """What every event has: its place in the run's stream (``seq``: 1, 2, 3 ...), when it
    happened (``at``, UTC) and the run (``run_id``, as in ``Run.id``). ``kind`` names the
    class (``"task_finished"`` ...)."""

    seq: int
    at: datetime
    run_id: str
    kind: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-ready values: ``seq``, ``kind``, ``run_id``, ``at`` (ISO 8601,
        UTC) and the fields of its class (tuples as lists)."""
        out: dict[str, Any] = {"seq": self.seq, "kind": self.kind, "run_id": self.run_id}
        out["at"] = self.at.isoformat()
        for f in fields(self):
            if f.name not in out:
                value = getattr(self, f.name)
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True, slots=True)
class RunStarted(Event):
    """The run is recorded and about to start its first task. ``origin_run_id``: the run a
    resume started from, else None."""

    flow: str
    origin_run_id: str | None
    kind: ClassVar[str] = "run_started"


@dataclass(frozen=True, slots=True)
class TaskStarted(Event):
    """An attempt of a task starts. ``index``: the task's index in its innermost foreach
    (None outside any); ``attempt``: 0 first, 1 for the first retry ..."""

    pathspec: str
    step: str
    index: int | None
    attempt: int
    kind: ClassVar[str] = "task_started"


@dataclass(frozen=True, slots=True)
class TaskFinished(Event):
    """A task ended and its record is committed with this event. ``status``: succeeded,
    failed, caught (``@catch``) or cancelled; ``duration``: seconds of its last attempt;
    ``artifacts``: the names whose value the task set or changed (not those it inherited
    unchanged). A task a resume cloned from its origin has no TaskStarted."""

    pathspec: str
    step: str
    status: str
    duration: float
    artifacts: tuple[str, ...]
    attempt: int
    kind: ClassVar[str] = "task_finished"


@dataclass(frozen=True, slots=True)
class TaskRetrying(Event):
    """Attempt ``attempt`` of a task with ``@retry`` failed (``error``: "Type: message"); the
    next attempt starts after ``delay`` seconds."""

    pathspec: str
    step: str
    attempt: int
    error: str
    delay: float
    kind: ClassVar[str] = "task_retrying"


@dataclass(frozen=True, slots=True)
class LogLine(Event):
    """One whole line a task printed (``stream``: ``"stdout"`` or ``"stderr"``), without its
    newline; a line longer than 4,096 characters is cut there. Lines are streamed at up to
    1,000 at once and 100 a second per task and stream; past that, a line ``[asyncflow:
    N line(s) not streamed ...]`` (at most one a second, and one as the task ends) stands
    for those left out. The task's whole output is stored with it all the same."""

    pathspec: str
    stream: str
    text: str
    kind: ClassVar[str] = "log_line"


@dataclass(frozen=True, slots=True)
class StepProgress(Event):
    """Progress of a foreach's body step (the step the split runs once per element):
    tasks ``done`` (succeeded or caught), ``failed`` (failed or cancelled), and ``total``
    (elements of the splits so far). At most 10 a second per step, except that the one
    completing the step's tasks so far is never held back: the last one of a step whose
    tasks all ran has ``done + failed == total``. A run that stops early (a failure, a
    cancellation) ends with the counts it reached, before its RunFinished."""

    step: str
    done: int
    failed: int
    total: int
    kind: ClassVar[str] = "step_progress"


@dataclass(frozen=True, slots=True)
class RunFinished(Event):
    """The run ended; always the last event. ``status``: succeeded, failed or cancelled;
    ``run``: its pathspec (``"Flow/12"``); ``error``: why it failed or was cancelled."""

    status: str
    run: str
    error: str | None
    kind: ClassVar[str] = "run_finished"


# --- items ------------------------------------------------------------------------------------

RUN_STARTED, TASK_STARTED, TASK_FINISHED, TASK_RETRYING, LOG_LINE, STEP_PROGRESS = 1, 2, 3, 4, 5, 6
RUN_FINISHED = 7


def make_event(item: Item, flow: str, run_id: str) -> Event:
    """The :class:`Event` of ``item`` (a checked one: see :func:`decode_chunk`)."""
    seq, code, at_us = item[0], item[1], item[2]
    at = _when(at_us)
    f = item[3:]
    if code == TASK_STARTED:
        return TaskStarted(seq, at, run_id, f"{flow}/{run_id}/{f[0]}/{f[1]}", f[0], f[2], f[3])
    if code == TASK_FINISHED:
        spec = f"{flow}/{run_id}/{f[0]}/{f[1]}"
        return TaskFinished(seq, at, run_id, spec, f[0], f[2], f[3] / 1e6, tuple(f[4]), f[5])
    if code == LOG_LINE:
        spec = f"{flow}/{run_id}/{f[0]}/{f[1]}"
        return LogLine(seq, at, run_id, spec, STREAMS[f[2]], f[3])
    if code == STEP_PROGRESS:
        return StepProgress(seq, at, run_id, f[0], f[1], f[2], f[3])
    if code == TASK_RETRYING:
        spec = f"{flow}/{run_id}/{f[0]}/{f[1]}"
        return TaskRetrying(seq, at, run_id, spec, f[0], f[2], f[3], f[4] / 1e6)
    if code == RUN_STARTED:
        return RunStarted(seq, at, run_id, flow, f[0])
    if code == RUN_FINISHED:
        return RunFinished(seq, at, run_id, f[0], f"{flow}/{run_id}", f[1])
    raise ValueError(f"unknown event code {code!r}")


def refinished(items: list[Item], status: str, error: str | None) -> list[Item]:
    """``items`` with any RunFinished given ``status`` and ``error`` (the writer's verdict on a
    run that lost a write)."""
    return [(*it[:3], status, error) if it[1] == RUN_FINISHED else it for it in items]


# --- chunks -----------------------------------------------------------------------------------


# A row's data stays under this many bytes (more start a new row): SQLite keeps a row of a
# WITHOUT ROWID table of 64 KiB pages in its leaf page only up to about 16 KB, and spills
# the rest to overflow pages, whose unused end is wasted (a 20 KB row took two pages).
CHUNK_BYTES = 8192


def encode_chunks(items: Sequence[Item]) -> list[tuple[int, bytes]]:
    """``items`` (of one run, in seq order) as rows ``(first seq, data)``: a new row at each
    gap in the seqs, and rows under :data:`CHUNK_BYTES` but for one of a single event (or,
    rarely, cut by :func:`encode_rows`: at most one event past it).

    Each row is packed in one msgpack buffer: a batch too big for one row is cut into
    pieces of equal counts, aimed at 3/4 of CHUNK_BYTES; a piece still too big (events of
    very uneven sizes) goes event by event.
    """
    rows: list[tuple[int, bytes]] = []
    n = len(items)
    if n and items[-1][0] - items[0][0] == n - 1:  # the usual batch: no gap
        _pack_run(items, 0, n, rows)
        return rows
    start = 0
    for end in range(1, n + 1):
        if end == n or items[end][0] != items[end - 1][0] + 1:
            _pack_run(items, start, end, rows)
            start = end
    return rows


def _pack(items: Sequence[Item], start: int, end: int) -> bytes:
    # items[start:end] as one row's data.
    t0 = items[start][2]
    packer = msgpack.Packer(use_bin_type=True, autoreset=False)
    packer.pack_array_header(end - start + 1)
    packer.pack(t0)
    pack = packer.pack
    for k in range(start, end):
        it = items[k]
        pack([it[1], it[2] - t0, *it[3:]])
    data: bytes = packer.bytes()
    return data


def _pack_run(items: Sequence[Item], start: int, end: int, rows: list[tuple[int, bytes]]) -> None:
    # items[start:end] have consecutive seqs: as one row, or several.
    data = _pack(items, start, end)
    if len(data) < CHUNK_BYTES or end - start == 1:
        rows.append((items[start][0], data))
        return
    step = -(-(end - start) // -(-len(data) // (CHUNK_BYTES * 3 // 4)))
    for first in range(start, end, step):
        last = min(first + step, end)
        data = _pack(items, first, last)
        if len(data) < CHUNK_BYTES or last - first == 1:
            rows.append((items[first][0], data))
        else:
            rows.extend(encode_rows(items[first:last]))


def encode_rows(items: Sequence[Item]) -> list[tuple[int, bytes]]:
    """``items`` as rows, one event at a time: a new row at each gap in the seqs and once a
    row holds CHUNK_BYTES of events (so at most one event past it)."""
    rows: list[tuple[int, bytes]] = []
    pack = msgpack.Packer(use_bin_type=True).pack
    parts: list[bytes] = []
    size = first = t0 = 0
    for it in items:
        if parts and (it[0] != first + len(parts) or size >= CHUNK_BYTES):
            rows.append((first, _chunk(t0, parts)))
            parts, size = [], 0
        if not parts:
            first, t0 = it[0], it[2]
        part = pack([it[1], it[2] - t0, *it[3:]])
        parts.append(part)
        size += len(part)
    if parts:
        rows.append((first, _chunk(t0, parts)))
    return rows


def _chunk(t0: int, parts: list[bytes]) -> bytes:
    packer = msgpack.Packer(use_bin_type=True)
    head: bytes = packer.pack_array_header(len(parts) + 1) + packer.pack(t0)
    return head + b"".join(parts)


_MAX_ID = 2**63 - 1
_LO_US, _HI_US = TIME_RANGE[0] * 1_000_000, TIME_RANGE[1] * 1_000_000


def _nat(value: object) -> bool:
    return isinstance(value, int) and type(value) is int and 0 <= value <= _MAX_ID


def _text(value: object) -> bool:
    return type(value) is str


def _opt_text(value: object) -> bool:
    return value is None or type(value) is str


def _names(value: object) -> bool:
    return type(value) is list and all(type(v) is str for v in value)


def _index(value: object) -> bool:
    return value is None or _nat(value)


def _code_of(values: Sequence[str]) -> Any:
    return lambda value: type(value) is str and value in values


def _stream(value: object) -> bool:
    return value in (0, 1) and type(value) is int


# Per code: the checks of its fields, in order.
_FIELDS: dict[int, tuple[Any, ...]] = {
    RUN_STARTED: (_opt_text,),
    TASK_STARTED: (_text, _nat, _index, _nat),
    TASK_FINISHED: (_text, _nat, _code_of(TASK_STATUSES), _nat, _names, _nat),
    TASK_RETRYING: (_text, _nat, _nat, _text, _nat),
    LOG_LINE: (_text, _nat, _stream, _text),
    STEP_PROGRESS: (_text, _nat, _nat, _nat),
    RUN_FINISHED: (_code_of(RUN_STATUSES), _opt_text),
}


def decode_chunk(seq: object, data: object) -> list[Item]:
    """The items of one stored row (``seq``, ``data``), each checked.

    :raises ValueError: the row is not one asyncflow writes (says what is wrong).
    """
    if not isinstance(seq, int) or not _nat(seq) or seq == 0:
        raise ValueError(f"an events row has seq {seq!r}, not a positive integer")
    if type(data) is not bytes:
        raise ValueError(f"an events row holds {type(data).__name__}, not bytes")
    try:
        body = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)
    except Exception as exc:  # msgpack raises several kinds; all mean "not ours"
        raise ValueError(f"the events row at seq {seq} is not valid msgpack ({exc})") from None
    if type(body) is not list or len(body) < 2 or type(body[0]) is not int:
        raise ValueError(f"the events row at seq {seq} is not a list of events")
    t0 = body[0]
    items: list[Item] = []
    for n, entry in enumerate(body[1:]):
        where = f"event {seq + n}"
        if type(entry) is not list or len(entry) < 2:
            raise ValueError(f"{where} is not a list")
        code, dt = entry[0], entry[1]
        checks = _FIELDS.get(code) if type(code) is int else None
        if checks is None or len(entry) != 2 + len(checks):
            raise ValueError(f"{where} has an unknown kind or shape")
        at = t0 + dt if type(dt) is int else None
        if at is None or not _LO_US <= at <= _HI_US:
            raise ValueError(f"{where} has a time out of range")
        for check, value in zip(checks, entry[2:], strict=True):
            if not check(value):
                raise ValueError(f"{where} holds a value asyncflow never writes ({value!r:.40})")
        f = entry[2:]
        if code == TASK_FINISHED:
            f[4] = tuple(f[4])
        if code == RUN_STARTED and f[0] is not None and not f[0].isdigit():
            raise ValueError(f"{where} names an origin run that is not a run id")
        items.append((seq + n, code, at, *f))
    if seq + len(items) - 1 > _MAX_ID:
        raise ValueError(f"the events row at seq {seq} runs past the largest seq")
    return items
