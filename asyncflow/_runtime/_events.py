"""The events of one run in this process (:class:`RunEvents`): numbering, the hand-off to the
writer, and the shared log that any number of readers follow, each at its own pace.

Publishing (from the loop or any worker thread) takes one lock: the event gets the next seq,
is appended to the log as an item (``_store._events``: a small tuple; an ``Event`` object is
made only by a reader) and is handed to the writer in the same critical section, so the
writer's queue holds events in seq order. A task's ``TaskFinished`` (and a ``StepProgress``
due with it) ride on the task's own record (:meth:`RunEvents.commit`): committed in the same
transaction. Other events wait in ``_unsent`` and leave with the next record, or at most
:data:`FLUSH_SECONDS` later as one ``AppendEvents`` (a timer on the loop), or with the run's
end: never a transaction of their own per event.

Readers (:class:`EventReader`) keep only a cursor. A reader that never reads holds nothing
and costs nothing: publishers wake the loop only when some reader waits. The log keeps the
last :data:`MEMORY_EVENTS` to :data:`MEMORY_EVENTS` x 2 items; a reader left further behind
reads the older ones back from the store (after a writer flush), so memory stays bounded
however long the run. Readers must run on the run's event loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from .._store import _events as ev
from .._store._events import Event, Item
from .._store._write_ops import AppendEvents, FinishRun, TaskRecord
from .._store._writer import Writer
from ._event_reader import EventReader, read_stored
from ._log_lines import LineSink

__all__ = ["FLUSH_SECONDS", "MEMORY_EVENTS", "RunEvents"]

FLUSH_SECONDS = 0.02  # an event that rides on no record is handed to the writer this late
PROGRESS_SECONDS = 0.1  # StepProgress of a step at most this often
MEMORY_EVENTS = 10_000

_STATUS_DONE = ("succeeded", "caught")


class _Progress:
    __slots__ = ("done", "due", "failed", "sent", "total")

    def __init__(self) -> None:
        self.done = self.failed = self.total = 0
        self.sent: tuple[int, int, int] | None = None  # the counts last published
        self.due = 0.0  # monotonic time the next one may be published


class RunEvents:
    """The event hub of one run (see the module doc).

    :param memory: items kept in memory at least (tests shrink it).
    """

    def __init__(self, memory: int = MEMORY_EVENTS) -> None:
        self.flow = ""
        self.run_id = 0
        self._memory = memory
        # Re-entrant: the run's context shares it (``RunContext.lock``), so a task's start and
        # commit take one lock, not two nested ones (16 draining threads contend for it).
        self.lock = self._lock = threading.RLock()
        self._seq = 0
        self._log: list[Item] = []
        self._base = 1  # seq of _log[0]
        # The readers alive: while there are none, the log keeps nothing (a reader made
        # later reads what came before from the store).
        self._readers: weakref.WeakSet[EventReader] = weakref.WeakSet()
        # The WeakSet's own set of references (dead ones leave it at once): its truth is
        # tested per event, with no Python call (WeakSet.__len__ is one).
        self._alive: set[Any] = self._readers.data  # type: ignore[attr-defined]
        self._unsent: list[Item] = []
        self._writer: Writer | None = None
        self._read: Callable[[Any], Any] | None = None
        self._path = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._flush_armed = False
        self._waiting = 0
        self._wake_pending = False
        self._changed = asyncio.Event()
        self._closing = False  # RunFinished is reserved: nothing is published after it
        self.finished = False  # RunFinished is in the log
        self.error: BaseException | None = None  # the run failed before it was recorded
        self._progress: dict[str, _Progress] = {}

    # --- set-up ------------------------------------------------------------------------------
    def bind(
        self, flow: str, run_id: int, writer: Writer, read: Callable[[Any], Any], path: str
    ) -> None:
        """The run is recorded: its flow and id, its writer, ``read`` (a blocking driver of
        read plans on its store) and the store's path. On the run's event loop."""
        self.flow = flow
        self._path = path
        self.run_id = run_id
        self._writer = writer
        self._read = read
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()

    def fail(self, error: BaseException | None) -> None:
        """The run ended before it was recorded: readers raise ``error``, or simply end for
        None (the run was cancelled: no RunFinished will come)."""
        with self._lock:
            self.error = error
            self._closing = True
            self.finished = error is None
        self._signal()

    # --- publishing ----------------------------------------------------------------------------
    def _next(self, code: int, *fields: Any) -> Item | None:
        # Under the lock: the item of a new event, appended to the log.
        if self._closing:
            return None
        self._seq += 1
        item = (self._seq, code, time.time_ns() // 1000, *fields)
        if self._alive:
            self._keep(item)
        return item

    def _keep(self, item: Item) -> None:
        # Under the lock, while some reader is alive (``self._alive``): append to the log,
        # trimming it to the last ``memory`` items once it holds twice that. While there is
        # none the log is left alone; :meth:`reader` empties it when it makes the first one.
        log = self._log
        log.append(item)
        if len(log) >= 2 * self._memory:
            drop = len(log) - self._memory
            del log[:drop]
            self._base += drop

    def _publish(self, code: int, *fields: Any) -> None:
        with self._lock:
            if self._closing:
                return
            self._seq += 1
            item = (self._seq, code, time.time_ns() // 1000, *fields)
            if self._alive:
                self._keep(item)
            self._unsent.append(item)
            arm = not self._flush_armed
            self._flush_armed = True
            wake = self._waiting > 0 and not self._wake_pending
            if wake:
                self._wake_pending = True
        if arm:
            self._arm(FLUSH_SECONDS)
        if wake:
            self._wake()

    def run_started(self, origin_run_id: int | None) -> None:
        """The run is recorded (after :meth:`bind`)."""
        self._publish(ev.RUN_STARTED, None if origin_run_id is None else str(origin_run_id))

    def task_started(self, step: str, task_id: int, path: tuple[int, ...], attempt: int) -> None:
        """An attempt's code starts (any thread)."""
        index = path[-1] if path else None
        with self._lock:  # _publish, inline: once per task
            if self._closing:
                return
            self._seq = seq = self._seq + 1
            item = (seq, ev.TASK_STARTED, time.time_ns() // 1000, step, task_id, index, attempt)
            if self._alive:
                self._keep(item)
            self._unsent.append(item)
            if self._flush_armed and not self._waiting:
                return  # the usual case: a flush is due anyway and nobody waits
            arm = not self._flush_armed
            self._flush_armed = True
            wake = self._waiting > 0 and not self._wake_pending
            if wake:
                self._wake_pending = True
        if arm:
            self._arm(FLUSH_SECONDS)
        if wake:
            self._wake()

    def retrying(self, step: str, task_id: int, attempt: int, error: str, delay: float) -> None:
        """Attempt ``attempt`` failed; another follows after ``delay`` seconds."""
        self._publish(ev.TASK_RETRYING, step, task_id, attempt, error, round(delay * 1e6))

    def split(self, step: str, count: int) -> None:
        """A foreach split ``count`` tasks of its body step ``step`` (under the scheduler's
        lock). The step's first split publishes its first StepProgress (0 done of ``count``),
        so its width is known before any of its tasks ends; a later one (a nested foreach)
        raises the total the next one reports."""
        with self._lock:
            p = self._progress.setdefault(step, _Progress())
            p.total += count
            if p.sent is not None:
                return
            p.sent = (p.done, p.failed, p.total)
        self._publish(ev.STEP_PROGRESS, step, *p.sent)

    def lines(self, step: str, task_id: int) -> LineSink:
        """Where the output of one attempt of task ``task_id`` goes, as LogLines."""
        return LineSink(self, step, task_id)

    @staticmethod
    def finished_fields(
        record: TaskRecord, base: Mapping[str, bytes]
    ) -> tuple[tuple[str, ...], int]:
        """What a task's TaskFinished says beyond its record: the names it set (those whose
        sha differs from ``base``, the mapping it started from) and its duration in
        microseconds. Made before :meth:`commit`, outside the caller's lock."""
        get = base.get
        set_names = tuple([n for n, sha in record.refs.items() if get(n) != sha])
        return set_names, max(0, int((record.finished_at - record.started_at) * 1e6))

    def commit(self, record: TaskRecord, finished: tuple[tuple[str, ...], int]) -> None:
        """Hand a finished task's record to the writer with its TaskFinished (and the events
        waiting for a ride); ``finished``: :meth:`finished_fields` of the record."""
        writer = self._writer
        assert writer is not None
        step, status = record.step, record.status
        with self._lock:
            if not self._closing:
                self._seq = seq = self._seq + 1
                item = (
                    seq, ev.TASK_FINISHED, time.time_ns() // 1000, step, record.task_id, status,
                    finished[1], finished[0], record.attempt,
                )  # fmt: skip
                if self._alive:
                    self._keep(item)
                unsent = self._unsent
                unsent.append(item)
                progress = self._progress.get(step)
                if progress is not None:
                    if status in _STATUS_DONE:
                        progress.done += 1
                    else:
                        progress.failed += 1
                    now = time.monotonic()
                    # Due (see _progress_due), tested here first: most tasks publish none.
                    if now >= progress.due or progress.done + progress.failed == progress.total:
                        self._progress_due(step, progress, now)
                record.events = unsent
                self._unsent = []
            writer.submit(record)
            if self._flush_armed and not self._waiting:
                return  # the usual case: a flush is due anyway and nobody waits
            wake = self._waiting > 0 and not self._wake_pending
            if wake:
                self._wake_pending = True
            arm = bool(self._progress) and not self._flush_armed and self._dirty()
            if arm:
                self._flush_armed = True
        if arm:
            self._arm(PROGRESS_SECONDS)
        if wake:
            self._wake()

    def _dirty(self) -> bool:
        return any(
            p.sent != (p.done, p.failed, p.total) and p.done + p.failed
            for p in self._progress.values()
        )

    def _progress_due(self, step: str, p: _Progress, now: float, force: bool = False) -> None:
        # Under the lock: publish the step's counts if they changed and one is due.
        counts = (p.done, p.failed, p.total)
        if p.sent == counts or not (p.done + p.failed):
            return
        # Held back while one was published less than PROGRESS_SECONDS ago, but for the one
        # that completes the step's tasks so far (a reader must see 7/7 when it happens).
        if now < p.due and not force and p.done + p.failed != p.total:
            return
        item = self._next(ev.STEP_PROGRESS, step, *counts)
        if item is not None:
            self._unsent.append(item)
            p.sent = counts
            p.due = now + PROGRESS_SECONDS

    def finish(self, op: FinishRun) -> None:
        """Hand the run's end to the writer with its RunFinished (and every event still
        waiting); readers see the RunFinished only once :meth:`finished_with` is called."""
        assert self._writer is not None
        with self._lock:
            now = time.monotonic()
            for step, p in self._progress.items():
                self._progress_due(step, p, now, force=True)
            self._seq += 1
            item = (self._seq, ev.RUN_FINISHED, time.time_ns() // 1000, op.status, op.error)
            self._closing = True
            op.events = [*self._unsent, item]
            self._unsent = []
            self._writer.submit(op)

    def finished_with(self, op: FinishRun) -> None:
        """The run's end is committed: its RunFinished (as the writer recorded it, see
        ``Writer._screen``) joins the log and ends every reader."""
        item = op.events[-1] if op.events else None
        with self._lock:
            if item is not None and item[1] == ev.RUN_FINISHED and self._alive:
                self._keep(item)
            self.finished = True
        self._signal()

    # --- the loop side ---------------------------------------------------------------------
    def _on_loop(self) -> bool:
        return threading.get_ident() == self._loop_thread

    def _arm(self, delay: float) -> None:
        loop = self._loop
        if loop is None:
            with self._lock:
                self._flush_armed = False
            return
        try:
            if self._on_loop():
                loop.call_later(delay, self._flush)
            else:
                loop.call_soon_threadsafe(loop.call_later, delay, self._flush)
        except RuntimeError:  # the loop is closed: the run's end took everything
            pass

    def _flush(self) -> None:
        # On the loop: hand the waiting events to the writer; re-arm while progress is due.
        with self._lock:
            self._flush_armed = False
            if self._closing or self._writer is None:
                return
            now = time.monotonic()
            for step, p in self._progress.items():
                self._progress_due(step, p, now)
            if self._unsent:
                self._writer.submit(AppendEvents(self.run_id, self._unsent))
                self._unsent = []
            rearm = self._dirty()
            self._flush_armed = rearm
            wake = self._waiting > 0 and not self._wake_pending
            if wake:
                self._wake_pending = True
        if rearm:
            self._arm(PROGRESS_SECONDS)
        if wake:
            self._signal()

    def _wake(self) -> None:
        if self._on_loop():
            self._signal()
            return
        loop = self._loop
        try:
            if loop is not None:
                loop.call_soon_threadsafe(self._signal)
        except RuntimeError:
            pass

    def _signal(self) -> None:
        # On the loop: wake every waiting reader.
        with self._lock:
            self._wake_pending = False
            changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # --- reading -------------------------------------------------------------------------------
    def reader(self, first: int = 1) -> EventReader:
        """A new reader from seq ``first`` (1: the whole stream)."""
        reader = EventReader(self, first)
        with self._lock:
            if not self._alive:  # the log kept nothing while there was no reader
                self._log.clear()
                self._base = self._seq + 1
            self._readers.add(reader)
        return reader

    def _take(self, first: int) -> tuple[list[Item], bool, asyncio.Event | None]:
        """(items from ``first`` on in memory; whether older ones must come from the store;
        the Event to wait on when there are none)."""
        with self._lock:
            if first < self._base:
                return [], True, None
            start = first - self._base
            if start < len(self._log):
                return self._log[start:], False, None
            if self.finished or self.error is not None:
                return [], False, None
            self._waiting += 1
            return [], False, self._changed

    def _done_waiting(self) -> None:
        with self._lock:
            self._waiting -= 1

    async def _from_store(self, first: int) -> list[Event]:
        writer, read = self._writer, self._read
        assert writer is not None and read is not None
        # Everything published before is in the file once the events waiting for a ride
        # are handed over and the writer has committed them; a writer that has stopped (the
        # store closed after the run) committed it all before.
        with self._lock:
            if self._unsent and not self._closing:
                writer.submit(AppendEvents(self.run_id, self._unsent))
                self._unsent = []
        done = writer.flush()
        while writer.alive and not done.done():
            await asyncio.wait([asyncio.wrap_future(done)], timeout=0.1)
        return await read_stored(self, first)

    def make(self, item: Item) -> Event:
        """The Event of one item of this run."""
        return ev.make_event(item, self.flow, str(self.run_id))
