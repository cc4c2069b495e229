"""Per-task capture of stdout and stderr while tasks run concurrently.

While any run is active, ``sys.stdout`` and ``sys.stderr`` are wrapped by a stream that
looks up the running task in a ContextVar: text written by a task is kept for that task
(and echoed to the real stream, each line prefixed with the task's pathspec); text written
outside any task goes straight through. The wrapper is removed when the last run ends.
"""

from __future__ import annotations

import io
import sys
import threading
from contextvars import ContextVar
from typing import TextIO

__all__ = ["TaskCapture", "capture_var", "install", "uninstall"]


class TaskCapture:
    """The output of one task."""

    __slots__ = ("_partial", "echo", "prefix", "stderr", "stdout")

    def __init__(self, prefix: str, echo: bool) -> None:
        self.prefix = prefix
        self.echo = echo
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._partial = {"stdout": False, "stderr": False}

    def text(self, which: str) -> str | None:
        """Everything the task wrote to ``which`` ("stdout" or "stderr"), or None."""
        parts = self.stdout if which == "stdout" else self.stderr
        return "".join(parts) if parts else None

    def prefixed(self, which: str, text: str) -> str:
        """``text`` with the task's prefix at the start of every line."""
        out = []
        at_line_start = not self._partial[which]
        for line in text.splitlines(keepends=True):
            out.append(f"[{self.prefix}] {line}" if at_line_start else line)
            at_line_start = line.endswith("\n")
        self._partial[which] = not at_line_start
        return "".join(out)


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
