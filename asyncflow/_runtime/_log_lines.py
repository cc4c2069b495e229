"""What a task prints, as LogLine events (:class:`LineSink`, one per attempt)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .._codecs._text import storable_text
from .._store import _events as ev

if TYPE_CHECKING:
    from ._events import RunEvents

__all__ = ["LINE_BURST", "LINE_CHARS", "LINE_RATE", "LineSink"]

LINE_CHARS = 4096  # a LogLine is cut at this many characters
LINE_BURST, LINE_RATE = 1000, 100.0  # LogLines per task and stream: at once, then per second
_STREAM = {"stdout": 0, "stderr": 1}


class _Bucket:
    """One stream's state in a LineSink: its partial last line and its token bucket."""

    __slots__ = ("noted", "pending", "skipped", "stamp", "tokens")

    def __init__(self) -> None:
        self.pending = ""
        self.tokens = float(LINE_BURST)
        self.stamp = time.monotonic()
        self.skipped = 0
        self.noted = 0.0  # when lines left out were last reported


class LineSink:
    """Turns what one attempt writes into LogLines: whole lines, cut at
    :data:`LINE_CHARS`, at most :data:`LINE_BURST` at once and :data:`LINE_RATE` a second per
    stream (a token bucket); the lines left out are counted and reported by one line of
    their own, at most once a second and when the task ends. Costs nothing until the task
    writes."""

    __slots__ = ("_buckets", "_hub", "_step", "_task")

    def __init__(self, hub: RunEvents, step: str, task_id: int) -> None:
        self._hub = hub
        self._step = step
        self._task = task_id
        self._buckets: list[_Bucket] | None = None

    def write(self, which: str, text: str) -> None:
        """Text the task wrote to ``which`` ("stdout" or "stderr")."""
        if self._buckets is None:
            self._buckets = [_Bucket(), _Bucket()]
        s = _STREAM[which]
        bucket = self._buckets[s]
        head, newline, tail = (bucket.pending + text).rpartition("\n")
        bucket.pending = tail[: LINE_CHARS + 1]
        if newline:
            for line in head.split("\n"):
                self._line(s, bucket, line)

    def _line(self, s: int, bucket: _Bucket, line: str) -> None:
        now = time.monotonic()
        tokens = min(LINE_BURST, bucket.tokens + (now - bucket.stamp) * LINE_RATE)
        bucket.stamp = now
        if tokens < 1:
            bucket.tokens = tokens
            bucket.skipped += 1
            return
        bucket.tokens = tokens - 1
        if bucket.skipped and now - bucket.noted >= 1.0:
            bucket.noted = now
            self._report_skipped(s, bucket)
        self._hub._publish(ev.LOG_LINE, self._step, self._task, s, storable_text(line[:LINE_CHARS]))

    def _report_skipped(self, s: int, bucket: _Bucket) -> None:
        skipped, bucket.skipped = bucket.skipped, 0
        if skipped:
            note = (
                f"[asyncflow: {skipped} line(s) not streamed (more than {LINE_RATE:g} a "
                "second); the task's whole output is stored with it]"
            )
            self._hub._publish(ev.LOG_LINE, self._step, self._task, s, note)

    def end(self) -> None:
        """The attempt ended: its partial last lines go as lines, and the count of lines
        left out, if any."""
        if self._buckets is None:
            return
        for s, bucket in enumerate(self._buckets):
            if bucket.pending:
                line, bucket.pending = bucket.pending, ""
                self._line(s, bucket, line)
            self._report_skipped(s, bucket)
