"""Per-task capture of stdout and stderr while tasks run concurrently.

While any run is active, ``sys.stdout`` and ``sys.stderr`` are wrapped by a stream that
looks up the running task in a ContextVar: text written by a task is kept for that task
exactly as written, and echoed to the real stream as whole lines, each prefixed with the
task's pathspec (a partial line waits for its newline, or for the task's end, so concurrent
tasks never share a line on the terminal); text written outside any task goes straight
through. The wrapper is removed when the last run ends.
"""

from __future__ import annotations

import contextlib
import io
import sys
import threading
from contextvars import ContextVar
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from ._log_lines import LineSink

__all__ = ["TaskCapture", "capture_var", "install", "uninstall"]


class TaskCapture:
    """The output of one task."""

    __slots__ = ("_pending", "echo", "lines", "prefix", "stderr", "stdout")

    def __init__(self, prefix: str, echo: bool, lines: LineSink | None = None) -> None:
        self.prefix = prefix
        self.echo = echo
        self.lines = lines  # the run's LogLines (None: not streamed, as in a worker)
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._pending = {"stdout": "", "stderr": ""}  # the echo's unfinished last line

    def text(self, which: str) -> str | None:
        """Everything the task wrote to ``which`` ("stdout" or "stderr"), or None."""
        parts = self.stdout if which == "stdout" else self.stderr
        return "".join(parts) if parts else None

    def prefixed(self, which: str, text: str) -> str:
        """The whole lines ``text`` completes on ``which``, each with the task's prefix; a
        partial last line is held back until a later call completes it (or :meth:`rest`)."""
        head, newline, tail = (self._pending[which] + text).rpartition("\n")
        self._pending[which] = tail
        if not newline:
            return ""
        return "".join(f"[{self.prefix}] {line}\n" for line in head.split("\n"))

    def rest(self, which: str) -> str:
        """The partial last line held back on ``which``, prefixed and ended with a newline
        (the task has ended), or ""."""
        tail, self._pending[which] = self._pending[which], ""
        return f"[{self.prefix}] {tail}\n" if tail else ""

    def end(self) -> None:
        """The task has ended: echo its partial last lines, each as a whole line (an echo
        that cannot be written never fails the task)."""
        if self.lines is not None:
            self.lines.end()
        for which in ("stdout", "stderr"):
            if not (self.echo and self._pending[which]):
                continue
            stream = getattr(sys, which)
            with contextlib.suppress(Exception):
                if isinstance(stream, _TaskStream):
                    with stream.lock:
                        stream.real.write(self.rest(which))
                else:
                    stream.write(self.rest(which))


capture_var: ContextVar[TaskCapture | None] = ContextVar("asyncflow_capture", default=None)


class _TaskStream(io.TextIOBase):
    def __init__(self, real: TextIO, which: str) -> None:
        self.real = real
        self.which = which
        self.users = 0
        self.lock = threading.Lock()

    def write(self, text: str) -> int:
        cap = capture_var.get()
        if cap is None:
            return self.real.write(text)
        (cap.stdout if self.which == "stdout" else cap.stderr).append(text)
        if cap.lines is not None and text:
            cap.lines.write(self.which, text)
        if cap.echo and text:
            with self.lock:
                self.real.write(cap.prefixed(self.which, text))
        return len(text)

    def flush(self) -> None:
        self.real.flush()

    def isatty(self) -> bool:
        return self.real.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.real, "encoding", "utf-8")

    def fileno(self) -> int:
        return self.real.fileno()


def install() -> None:
    """Wrap sys.stdout/sys.stderr (once; nested installs are counted)."""
    for which in ("stdout", "stderr"):
        stream = getattr(sys, which)
        if not isinstance(stream, _TaskStream):
            stream = _TaskStream(stream, which)
            setattr(sys, which, stream)
        stream.users += 1


def uninstall() -> None:
    """Undo one :func:`install`; the last one restores the real streams."""
    for which in ("stdout", "stderr"):
        stream = getattr(sys, which)
        if isinstance(stream, _TaskStream):
            stream.users -= 1
            if stream.users <= 0:
                setattr(sys, which, stream.real)
