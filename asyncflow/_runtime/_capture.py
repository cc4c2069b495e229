"""Per-task capture of stdout and stderr while tasks run concurrently.

While any run is active, ``sys.stdout`` and ``sys.stderr`` are wrapped by a stream that
looks up the running task in a ContextVar: text written by a task is kept for that task
exactly as written, and echoed to the real stream as whole lines, each prefixed with the
task's pathspec (a partial line waits for its newline, or for the task's end, so concurrent
tasks never share a line on the terminal; a carriage return ends a line of the echo too, so
that a progress bar redrawn with ``\\r`` keeps the prefix); text written outside any task
goes straight through. The wrapper is removed when the last run ends.

The echo is best effort: what the real stream cannot encode is written escaped
(``\\ud800``), and once writing to it fails (a closed pipe, a closed file) the echo to that
stream stops for the rest of the run; the task never sees the error, and its output is
captured all the same. Bytes written to ``sys.stdout.buffer`` in a task are captured as
text (UTF-8, what cannot be decoded escaped as ``\\xff``).
"""

from __future__ import annotations

import codecs
import contextlib
import io
import re
import sys
import threading
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

    from ._log_lines import LineSink

__all__ = ["TaskCapture", "capture_var", "echo_safe", "install", "uninstall"]

_BREAK = re.compile(r"\r\n|\n|\r")


def echo_safe(text: str, encoding: str | None) -> str:
    """``text`` with what ``encoding`` cannot encode escaped (``\\ud800``, ``\\xe9``)."""
    if text.isascii():
        return text
    enc = encoding or "utf-8"
    try:
        text.encode(enc)
    except UnicodeEncodeError:
        return text.encode(enc, "backslashreplace").decode(enc)
    except LookupError:
        return text.encode("ascii", "backslashreplace").decode("ascii")
    return text


def _lines(done: str) -> list[str]:
    """The lines of ``done`` (text ending with a line break), without their breaks: a
    carriage return ends a line too (``\\r\\n`` is one break), and an empty line it ends is
    dropped (a progress bar starts each redraw with one)."""
    out: list[str] = []
    start = 0
    for m in _BREAK.finditer(done):
        line = done[start : m.start()]
        start = m.end()
        if line or m.group() != "\r":
            out.append(line)
    return out


class TaskCapture:
    """The output of one task."""

    __slots__ = ("_decoders", "_pending", "echo", "lines", "prefix", "stderr", "stdout")

    def __init__(self, prefix: str, echo: bool, lines: LineSink | None = None) -> None:
        self.prefix = prefix
        self.echo = echo
        self.lines = lines  # the run's LogLines (None: not streamed, as in a worker)
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._pending = {"stdout": "", "stderr": ""}  # the echo's unfinished last line
        self._decoders: dict[str, codecs.IncrementalDecoder] = {}  # of .buffer writes

    def text(self, which: str) -> str | None:
        """Everything the task wrote to ``which`` ("stdout" or "stderr"), or None."""
        parts = self.stdout if which == "stdout" else self.stderr
        return "".join(parts) if parts else None

    def prefixed(self, which: str, text: str) -> str:
        """The whole lines ``text`` completes on ``which``, each with the task's prefix; a
        partial last line is held back until a later call completes it (or :meth:`rest`).
        A carriage return ends a line as a newline does (``\\r\\n`` is one line break)."""
        text = self._pending[which] + text
        if "\r" not in text:
            head, newline, tail = text.rpartition("\n")
            lines = head.split("\n") if newline else []
        else:  # a trailing \r waits: a \n that follows it makes one break with it
            cut = max(text.rfind("\n"), text.rfind("\r", 0, len(text) - 1))
            lines, tail = _lines(text[: cut + 1]), text[cut + 1 :]
        self._pending[which] = tail
        return "".join(f"[{self.prefix}] {line}\n" for line in lines)

    def rest(self, which: str) -> str:
        """The partial last line held back on ``which``, prefixed and ended with a newline
        (the task has ended), or ""."""
        tail, self._pending[which] = self._pending[which], ""
        tail = tail.removesuffix("\r")
        return "".join(f"[{self.prefix}] {line}\n" for line in _lines(tail + "\n")) if tail else ""

    def take(self, which: str, text: str) -> None:
        """Keep ``text`` the task wrote to ``which``; stream it, echo it."""
        (self.stdout if which == "stdout" else self.stderr).append(text)
        if self.lines is not None and text:
            self.lines.write(which, text)
        if self.echo and text:
            _echo(which, self.prefixed(which, text))

    def take_bytes(self, which: str, data: bytes) -> None:
        """Keep ``data`` the task wrote to ``which``'s ``.buffer``, as text (see the module
        doc); a character split between two writes is decoded whole."""
        decoder = self._decoders.get(which)
        if decoder is None:
            decoder = self._decoders[which] = codecs.getincrementaldecoder("utf-8")(
                "backslashreplace"
            )
        self.take(which, decoder.decode(data))

    def end(self) -> None:
        """The task has ended: echo its partial last lines, each as a whole line (an echo
        that cannot be written never fails the task)."""
        for which, decoder in self._decoders.items():
            self.take(which, decoder.decode(b"", final=True))
        self._decoders.clear()
        if self.lines is not None:
            self.lines.end()
        for which in ("stdout", "stderr"):
            self.echo_rest(which)

    def echo_rest(self, which: str) -> None:
        """Echo the partial last line held back on ``which`` (the task has ended)."""
        if self.echo and self._pending[which]:
            _echo(which, self.rest(which))


def _echo(which: str, text: str) -> None:
    """Write the echo ``text`` to ``sys.<which>`` (see the module doc); never raises."""
    if not text:
        return
    stream = getattr(sys, which)
    if isinstance(stream, _TaskStream):
        stream.echo(text)
        return
    with contextlib.suppress(Exception):  # not installed (a worker's output, say)
        stream.write(echo_safe(text, getattr(stream, "encoding", None)))


capture_var: ContextVar[TaskCapture | None] = ContextVar("asyncflow_capture", default=None)


class _TaskStream(io.TextIOBase):
    """``sys.stdout``/``sys.stderr`` while runs are active (see the module doc). In a task
    it behaves as a text stream of its own (``isatty()`` False, no ``fileno()``, a
    ``.buffer`` for bytes); outside one it is the real stream."""

    def __init__(self, real: TextIO, which: str) -> None:
        self.real = real
        self.which = which
        self.users = 0
        self.lock = threading.Lock()
        self.broken = False  # writing the echo failed: the echo stopped
        self._buffer = _TaskBuffer(self)

    def write(self, text: str) -> int:
        cap = capture_var.get()
        if cap is None:
            return self.real.write(text)
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        cap.take(self.which, text)
        return len(text)

    def echo(self, text: str) -> None:
        """Write the echo of a task's lines to the real stream; never raises."""
        if self.broken:
            return
        with self.lock:
            try:
                self.real.write(echo_safe(text, getattr(self.real, "encoding", None)))
            except Exception:  # a closed pipe or file, a stream that refuses
                self.broken = True

    def flush(self) -> None:
        if capture_var.get() is None:
            self.real.flush()
        elif not self.broken:
            try:
                self.real.flush()
            except Exception:
                self.broken = True

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        if capture_var.get() is not None:
            return False  # what a task writes is captured, not drawn on a terminal
        return self.real.isatty()

    def fileno(self) -> int:
        # The real stream's descriptor, in a task too: a subprocess given sys.stdout writes
        # to the terminal (uncaptured), as it did before tasks had streams of their own.
        return self.real.fileno()

    @property
    def buffer(self) -> _TaskBuffer:
        """Bytes written here in a task are captured as text; else they go to the real
        stream's buffer."""
        return self._buffer

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.real, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str:  # type: ignore[override]
        if capture_var.get() is not None:
            return "strict"  # every str is taken; its echo escapes what cannot be shown
        return getattr(self.real, "errors", None) or "strict"

    @property
    def line_buffering(self) -> bool:
        return bool(getattr(self.real, "line_buffering", False))


class _TaskBuffer(io.BufferedIOBase):
    """``sys.stdout.buffer`` while runs are active (see :class:`_TaskStream`)."""

    def __init__(self, stream: _TaskStream) -> None:
        self._stream = stream

    def write(self, data: ReadableBuffer, /) -> int:
        cap = capture_var.get()
        raw = bytes(data)
        if cap is None:
            real: Any = self._stream.real
            target = getattr(real, "buffer", None)
            if target is not None:
                return int(target.write(raw))
            real.write(raw.decode(self._stream.encoding, "backslashreplace"))
            return len(raw)
        cap.take_bytes(self._stream.which, raw)
        return len(raw)

    def flush(self) -> None:
        self._stream.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()


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
