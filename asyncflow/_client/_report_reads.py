"""What the run report (``_report``) reads of a run, in few queries: :class:`ReportReader`.

The report shows every task of a run in a timeline, and details (output, artifacts, cards)
of some of them; reading each task on its own would take a 10,000-task foreach tens of
thousands of round trips. The reader reads the run's record, every task row and every
earlier attempt in one snapshot, then the details of the chosen tasks in batched queries
(``_store._report_reads``), and values blob by blob, each decoded with the same safe-loading
rules as ``task.data`` (a pickle of a run you do not trust is never unpickled, see
``_trust``).

The reader opens a store handle of its own (same file, same ``trust``), closed by
:meth:`ReportReader.close`: a report made from a worker thread leaves no connection behind
on the caller's objects. It only reads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .._codecs import decode, untrusted_budget
from .._errors import StoreError
from .._store import _queries as q
from .._store._blobs import RawBlob
from .._store._events import LogLine, TaskFinished, TaskRetrying, TaskStarted
from .._store._plans import Plan
from .._store._report_reads import (
    AttemptTimes,
    BlobHead,
    TaskExtras,
    attempt_times,
    blob_heads,
    task_extras,
)
from .._store._rows import RunRow, TaskRow
from .._store._signing import run_trust
from ._cards import Card, make_cards
from ._data import decode_blob
from ._handle import StoreHandle
from ._messages import missing_run_plan
from ._run import Run
from ._trust import gate

__all__ = [
    "AttemptTimes",
    "BlobHead",
    "LiveTask",
    "ReportReader",
    "RunReading",
    "TaskExtras",
]


@dataclass(frozen=True, slots=True)
class LiveTask:
    """A task started and not finished, as the run's events tell (a running run's, or one
    a crashed run left): its output so far is in ``stdout``/``stderr``."""

    task_id: int
    step: str
    index: int | None
    attempt: int
    started_at: float
    stdout: str
    stderr: str


@dataclass(frozen=True, slots=True)
class RunReading:
    """One consistent snapshot of a run: its record, every finished task (by foreach path,
    then id), the earlier attempts of retried tasks, its parameters (name, sha), whether the
    file is an archive and whether the run's pickles may load (trusted, or ``trust``)."""

    run: Run
    tasks: list[TaskRow]
    attempts: dict[int, list[AttemptTimes]]
    params: tuple[tuple[str, bytes], ...]
    archive: bool
    trusted: bool


class ReportReader:
    """Reads one run for a report (see the module doc). Blocking; use it in one thread."""

    def __init__(self, run: Run) -> None:
        handle = run._handle
        self._handle = StoreHandle(handle.path, handle.trust)
        # An archive's records checked for this version of the file need no second check.
        self._handle._checked.update(handle._checked)
        self._row: RunRow = run._row
        self.path = self._handle.path
        self.trust = handle.trust

    def close(self) -> None:
        """Close the reader's store connection."""
        self._handle.close()

    # --- the run ----------------------------------------------------------------------------
    def _run_plan(self) -> Plan[tuple[RunRow, list[TaskRow], dict[int, list[AttemptTimes]]]]:
        row = yield from q.run(self._row.flow, self._row.id)
        if row is None:
            raise (yield from missing_run_plan(self._row.flow, self._row.id, self.path))
        tasks = yield from q.tasks(row.id)
        attempts = yield from attempt_times(row.id)
        return row, tasks, attempts

    def read_run(self) -> RunReading:
        """The run as stored now (see :class:`RunReading`).

        :raises NotFoundError: the run is no longer in the store.
        :raises StoreError: the store cannot be read.
        """
        row, tasks, attempts = self._handle.run(self._run_plan())
        self._row = row
        state = self._handle.run(run_trust(row.id))
        run = Run._make(self._handle, row)
        return RunReading(
            run, tasks, attempts, row.params, state.archive, state.trusted or self.trust
        )

    def live_tasks(self, run: Run, max_chars: int) -> list[LiveTask]:
        """The tasks started and not finished, from the run's stored events, with up to the
        last ``max_chars`` characters each printed so far. ``[]`` for a run without events.

        :raises StoreError: the events cannot be read.
        """
        started: dict[str, TaskStarted] = {}
        logs: dict[str, dict[str, list[str]]] = {}
        for event in run.events():
            if isinstance(event, TaskStarted):
                started[event.pathspec] = event
                logs[event.pathspec] = {"stdout": [], "stderr": []}
            elif isinstance(event, TaskFinished | TaskRetrying):
                started.pop(event.pathspec, None)
                logs.pop(event.pathspec, None)
            elif isinstance(event, LogLine) and event.pathspec in logs:
                logs[event.pathspec].setdefault(event.stream, []).append(event.text)
        live = []
        for pathspec, event in started.items():
            task_id = pathspec.rsplit("/", 1)[-1]
            if not task_id.isdigit():
                continue
            out = logs[pathspec]
            live.append(
                LiveTask(
                    int(task_id),
                    event.step,
                    event.index,
                    event.attempt,
                    event.at.timestamp(),
                    _last("\n".join(out.get("stdout", ())), max_chars),
                    _last("\n".join(out.get("stderr", ())), max_chars),
                )
            )
        return live

    # --- details of chosen tasks ------------------------------------------------------------
    def extras(self, task_ids: list[int], head: int, tail: int) -> dict[int, TaskExtras]:
        """The output (cut), artifacts and card rows of tasks ``task_ids``, batched.

        :raises StoreError: the store cannot be read.
        """
        return self._handle.run(task_extras(self._row.id, task_ids, head, tail))

    def heads(self, shas: list[bytes]) -> dict[bytes, BlobHead]:
        """The rows of blobs ``shas`` without payload (a missing one is left out).

        :raises StoreError: the store cannot be read.
        """
        return self._handle.run(blob_heads(shas))

    def blobs(self, shas: list[bytes]) -> dict[bytes, RawBlob | StoreError]:
        """The blobs ``shas``, each checked against its sha as the client checks a read (every
        one from an archive); a blob that cannot be read maps to the error why.
        """
        try:
            return dict(self._handle.run(q.blobs(shas, self.path)))
        except StoreError:
            if len(shas) == 1:
                raise
        out: dict[bytes, RawBlob | StoreError] = {}
        for sha in shas:  # one is missing or damaged: which, and the others still load
            try:
                out[sha] = self._handle.run(q.blob(sha, self.path))
            except StoreError as exc:
                out[sha] = exc
        return out

    def value(self, raw: RawBlob, what: str, name: str, pathspec: str) -> Any:
        """Decode ``raw``, read for ``what`` (``"artifact 'x' of task F/1/s/2"``), by the
        client's rules: a pickle loads only from a run you trust (or with ``trust``), a large
        msgpack value of a run you do not trust only within its budget.

        :raises AsyncflowError: the value may not or cannot be loaded; the message says why
            and what to do.
        """
        checks = gate(self._handle, raw, self._row.flow, self._row.id, name, pathspec)
        return decode_blob(raw, what, self.path, checks)

    def cards(self, rows: list[tuple[int, str | None, str, bytes]], pathspec: str) -> list[Card]:
        """The cards of task ``pathspec`` from its card rows.

        :raises StoreError: a card cannot be read (the file is damaged there).
        """
        if not rows:
            return []
        raws = self._handle.run(q.blobs([row[3] for row in rows], self.path))
        return make_cards(list(rows), raws, pathspec, self.path)

    @staticmethod
    def numpy_header(head: BlobHead) -> tuple[list[int], str] | None:
        """The shape and dtype of a stored numpy array, from its header alone (its payload
        is not read); None for another value, or a header that cannot be read."""
        if head.encoding != "numpy" or head.meta is None or len(head.meta) > 1 << 16:
            return None
        try:
            meta = decode("msgpack", None, head.meta, untrusted_budget(len(head.meta)))
            shape = meta["shape"]
            if not isinstance(shape, list) or not all(isinstance(n, int) for n in shape):
                return None
            from numpy.lib.format import descr_to_dtype

            return [int(n) for n in shape], str(descr_to_dtype(meta["descr"]))
        except Exception:  # a header asyncflow would not write: no shape to show
            return None

    @property
    def source_name(self) -> str:
        """The store or archive file's name (its basename)."""
        return os.path.basename(self.path)


def _last(text: str, most: int) -> str:
    return text if len(text) <= most else text[-most:]
