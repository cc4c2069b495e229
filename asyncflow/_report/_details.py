"""The detailed parts of the report model: tasks (output, attempts, artifacts, cards) and
parameters, each value previewed at most once (values are content-addressed: the artifacts a
join or a foreach's tasks share are read once).

Values are read in batches of at most :attr:`Details.LOAD_BATCH_BYTES`, previewed, then
dropped; a value larger than :attr:`Details.READ_BYTES` is not read at all (its preview says
so, with a numpy array's shape and dtype, read from its header).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .._client._report_reads import LiveTask, ReportReader, RunReading, TaskExtras
from .._errors import AsyncflowError, StoreError, UntrustedArtifactError
from .._store._report_reads import BlobHead, LogCut
from .._store._rows import TaskRow
from ._card_model import CardBudget, card_error, card_model
from ._previews import cut_text, describe, preview, unavailable

__all__ = ["Details", "ms"]


def ms(seconds: float) -> float:
    """A time rounded to the millisecond (smaller JSON, nothing lost a person can see)."""
    return round(seconds, 3)


@dataclass(frozen=True, slots=True)
class _Ref:
    """One value to preview: its sha, and what reads it (for messages and safe loading)."""

    sha: bytes
    name: str
    pathspec: str
    what: str


def _type_name(value: Any) -> str:
    kind = type(value)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")


class Details:
    """Builds the detailed parts of one report's model (see the module doc)."""

    LOG_CHARS: ClassVar[int] = 2000  # first and last characters of each output stream kept
    ARTIFACTS_PER_TASK: ClassVar[int] = 40  # artifacts of a task previewed (by name)
    READ_BYTES: ClassVar[int] = 32 << 20  # values larger than this are not read
    LOAD_BATCH_BYTES: ClassVar[int] = 64 << 20  # bytes of values held at once while reading
    TRACEBACK_CHARS: ClassVar[int] = 20_000  # of a failed task's traceback (its end is kept)
    EXCEPTION_CHARS: ClassVar[int] = 4000  # of a failed task's exception

    def __init__(self, reader: ReportReader, reading: RunReading) -> None:
        self._reader = reader
        self._reading = reading
        self._previews: dict[bytes, dict[str, Any]] = {}
        self._types: dict[bytes, str] = {}
        self._cards = CardBudget()

    @classmethod
    def limits(cls) -> dict[str, int]:
        """The limits in force, as the model records them."""
        return {
            "log_chars": cls.LOG_CHARS,
            "artifacts_per_task": cls.ARTIFACTS_PER_TASK,
            "read_bytes": cls.READ_BYTES,
            "traceback_chars": cls.TRACEBACK_CHARS,
        }

    # --- values -----------------------------------------------------------------------------
    def load_artifacts(self, extras: dict[int, TaskExtras]) -> None:
        """Preview the artifacts of the detailed tasks (the first ``ARTIFACTS_PER_TASK``
        of each, by name)."""
        run = self._reading.run
        refs = []
        rows = {row.id: row for row in self._reading.tasks}
        for task_id, extra in extras.items():
            row = rows.get(task_id)
            if row is None:
                continue
            pathspec = f"{run.pathspec}/{row.step}/{row.id}"
            for art in extra.artifacts[: self.ARTIFACTS_PER_TASK]:
                refs.append(_Ref(art.sha, art.name, pathspec, f"artifact {art.name!r} of task "
                                 f"{pathspec}"))  # fmt: skip
        self._load(refs)

    def parameters(self, params: tuple[tuple[str, bytes], ...], pathspec: str) -> list[Any]:
        """The run's parameters: ``[{"name", "preview"}]``."""
        refs = [_Ref(sha, name, pathspec, f"parameter {name!r} of run {pathspec}")
                for name, sha in params]  # fmt: skip
        self._load(refs)
        return [{"name": ref.name, "preview": self._previews[ref.sha]} for ref in refs]

    def _load(self, refs: list[_Ref]) -> None:
        todo = list({ref.sha: ref for ref in reversed(refs) if ref.sha not in self._previews}
                    .values())  # fmt: skip
        if not todo:
            return
        heads = self._reader.heads([ref.sha for ref in todo])
        batch: list[_Ref] = []
        held = 0
        for ref in todo:
            head = heads.get(ref.sha)
            if head is None:
                self._previews[ref.sha] = unavailable(
                    f"{ref.what} is missing from {self._reader.path!r} (the file is damaged "
                    "there); restore it from a copy"
                )
            elif head.size > self.READ_BYTES:
                self._previews[ref.sha] = unavailable(self._too_big(ref, head))
                if self._reader.numpy_header(head):  # its type, known without reading it
                    self._types[ref.sha] = "ndarray"
            else:
                batch.append(ref)
                held += head.size
                if held >= self.LOAD_BATCH_BYTES or len(batch) >= 200:
                    self._decode(batch)
                    batch, held = [], 0
        self._decode(batch)

    def _too_big(self, ref: _Ref, head: BlobHead) -> str:
        shape = self._reader.numpy_header(head)
        what = f"a {shape[1]} array of shape {tuple(shape[0])}, " if shape else ""
        return (
            f"{what}{_size(head.size)} stored ({head.encoding}): larger than a report reads "
            f"({_size(self.READ_BYTES)}); read it in Python ({ref.what})"
        )

    def _decode(self, refs: list[_Ref]) -> None:
        if not refs:
            return
        raws = self._reader.blobs([ref.sha for ref in refs])
        for ref in refs:
            raw = raws[ref.sha]
            if isinstance(raw, StoreError):
                self._previews[ref.sha] = unavailable(str(raw))
                continue
            try:
                value = self._reader.value(raw, ref.what, ref.name, ref.pathspec)
            except UntrustedArtifactError as exc:
                self._previews[ref.sha] = unavailable(
                    f"{exc} For this report: `asyncflow report ... --trust`, or "
                    "write_report(run) of a run opened with trust=True, only if you trust "
                    "its author."
                )
            except AsyncflowError as exc:  # the client's message says why and what to do
                self._previews[ref.sha] = unavailable(str(exc))
            except Exception as exc:  # whatever else reading it raised, the report goes on
                self._previews[ref.sha] = unavailable(f"cannot read {ref.what}: {describe(exc)}")
            else:
                self._types[ref.sha] = _type_name(value)
                self._previews[ref.sha] = preview(value)
                del value

    # --- tasks ------------------------------------------------------------------------------
    def task(
        self, row: TaskRow, extra: TaskExtras | None, pass_index: int | None, flow: str
    ) -> dict[str, Any]:
        """The TASK of a finished task (see ``_model``)."""
        pathspec = f"{flow}/{row.run_id}/{row.step}/{row.id}"
        attempts = [
            {"n": a.attempt, "started_at": ms(a.started_at), "finished_at": ms(a.finished_at),
             "ok": a.status == "succeeded"}
            for a in self._reading.attempts.get(row.id, ())
        ]  # fmt: skip
        attempts.append(
            {"n": row.attempt, "started_at": ms(row.started_at),
             "finished_at": ms(row.finished_at), "ok": row.status == "succeeded"}
        )  # fmt: skip
        last = row.path.rsplit(".", 1)[-1]
        artifacts: list[dict[str, Any]] = []
        cards: list[dict[str, Any]] = []
        shown = extra.artifacts[: self.ARTIFACTS_PER_TASK] if extra else ()
        for art in shown:
            artifacts.append(
                {"name": art.name, "type": self._types.get(art.sha, ""),
                 "encoding": art.encoding, "size": art.size, "preview": self._previews[art.sha]}
            )  # fmt: skip
        if extra and extra.cards:
            cards = self._task_cards(extra, pathspec)
        return {
            "id": str(row.id),
            "pathspec": pathspec,
            "status": row.status,
            "started_at": ms(row.started_at),
            "finished_at": ms(row.finished_at),
            "index": int(last) if last.isdigit() else None,
            "pass": pass_index,
            "attempts": attempts,
            "artifacts": artifacts,
            "artifacts_omitted": (len(extra.artifacts) - len(shown)) if extra else 0,
            "stdout": self._log(extra.stdout if extra else None, pathspec, "stdout"),
            "stderr": self._log(extra.stderr if extra else None, pathspec, "stderr"),
            "exception": None
            if row.exception is None
            else cut_text(row.exception, self.EXCEPTION_CHARS),
            "traceback": None if row.traceback is None else self._traceback(row.traceback),
            "cards": cards,
        }

    def live_task(self, task: LiveTask, status: str, flow: str, run_id: str) -> dict[str, Any]:
        """The TASK of a task still running (or left unfinished by a crashed run)."""
        return {
            "id": str(task.task_id),
            "pathspec": f"{flow}/{run_id}/{task.step}/{task.task_id}",
            "status": status,
            "started_at": ms(task.started_at),
            "finished_at": None,
            "index": task.index,
            "pass": None,
            "attempts": [
                {
                    "n": task.attempt,
                    "started_at": ms(task.started_at),
                    "finished_at": None,
                    "ok": False,
                }
            ],
            "artifacts": [],
            "artifacts_omitted": 0,
            "stdout": task.stdout,
            "stderr": task.stderr,
            "exception": None,
            "traceback": None,
            "cards": [],
        }

    def _traceback(self, text: str) -> str:
        if len(text) <= self.TRACEBACK_CHARS:
            return text
        cut = len(text) - self.TRACEBACK_CHARS
        return f"[the first {cut:,} characters cut] …{text[cut:]}"

    def _log(self, log: LogCut | None, pathspec: str, stream: str) -> str:
        if log is None:
            return ""
        cut = log.length - len(log.head) - len(log.tail)
        if cut <= 0:
            return log.head + log.tail
        return (
            f"{log.head}\n… [{cut:,} characters cut; the whole {stream}: `asyncflow logs "
            f"{pathspec} --{stream}`] …\n{log.tail}"
        )

    def _task_cards(self, extra: TaskExtras, pathspec: str) -> list[dict[str, Any]]:
        try:
            cards = self._reader.cards(list(extra.cards), pathspec)
        except StoreError as exc:
            return [{"id": None, "type": "error", "components": [card_error(str(exc))]}]
        return [card_model(card, self._cards) for card in cards]
