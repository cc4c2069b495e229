"""Live progress of ``run`` and ``resume`` (:func:`watch`), drawn from the run's event hub.

Three screens:

* ``lines`` (stdout is not a terminal, or ``TERM=dumb``): a line per finished step and per
  failure, nothing redrawn;
* ``plain`` (a terminal, without ``rich``): the same lines, below them one line per active
  step, redrawn in place with ANSI cursor moves at most 10 times a second;
* ``rich`` (a terminal, ``rich`` installed): the same, the active steps drawn by
  ``rich.live.Live`` with a progress bar per foreach.

``ASYNCFLOW_PROGRESS=rich|plain|lines|off`` chooses one. While a screen shows, ``sys.stdout``
(and ``sys.stderr`` when it is the terminal too) is a :class:`_Through`: text reaches the
terminal as whole lines, printed above the live rows (the echo of task output included,
which the run's capture writes to the stream it finds installed).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TextIO, TypeVar

import anyio

from .._errors import UsageError
from .._runtime._events import RunEvents
from .._spec._flowgraph import FlowGraph
from .._store._events import Event
from ._progress import Row, StepBoard, row_text, seconds

__all__ = ["MODES", "choose_mode", "run_shown", "showing", "watch"]

T = TypeVar("T")
MODES = ("rich", "plain", "lines", "off")
REDRAW_SECONDS = 0.1
BATCH_CHARS = 64 * 1024  # the rich screen prints waiting lines at the latest at this size
DRAIN_SECONDS = 5.0  # the screen shows the events of an ended run for at most this long


def choose_mode() -> str:
    """The screen for this process's stdout (see the module doc).

    :raises UsageError: ``ASYNCFLOW_PROGRESS`` is set to something else than a mode.
    """
    wanted = os.environ.get("ASYNCFLOW_PROGRESS", "").strip().lower()
    if wanted and wanted not in (*MODES, "auto"):
        raise UsageError(
            f"ASYNCFLOW_PROGRESS={wanted[:40]!r} is not a progress display; use one of "
            f"{', '.join(MODES)} (or unset it: a terminal gets rich or plain, else lines)"
        )
    if wanted == "rich" and not _rich_importable():
        raise UsageError(
            "ASYNCFLOW_PROGRESS=rich, but rich cannot be imported here; install it "
            "(pip install 'asyncflow[rich]') or use ASYNCFLOW_PROGRESS=plain"
        )
    if wanted and wanted != "auto":
        return wanted
    terminal = _isatty(sys.stdout) and os.environ.get("TERM", "") not in ("dumb", "unknown")
    if not terminal:
        return "lines"
    return "rich" if _rich_importable() else "plain"


def _rich_importable() -> bool:
    try:
        import rich.console
        import rich.live  # noqa: F401
    except ImportError:
        return False
    return True


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class _Screen:
    """The ``lines`` screen; the others add live rows."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out = out
        self.err = err
        self.lock = threading.RLock()
        self.dead = False  # writing failed (the reader of a pipe went away): show nothing

    @contextlib.contextmanager
    def writing(self) -> Iterator[bool]:
        """Within (holding the lock): write if the value is True. A write that fails
        leaves the screen dead, and the run goes on: the display is best effort."""
        with self.lock:
            if self.dead:
                yield False
                return
            try:
                yield True
            except (OSError, ValueError):
                self.dead = True

    def start(self, board: StepBoard) -> None:
        """Begin showing ``board``."""

    def emit(self, text: str, err: bool = False) -> None:
        """Write whole lines ``text`` (from a task's echo or a print)."""
        with self.writing() as ok:
            if ok:
                (self.err if err else self.out).write(text)

    def line(self, text: str) -> None:
        """Print one progress line."""
        with self.writing() as ok:
            if ok:
                self.out.write(text + "\n")
                self.out.flush()

    def redraw(self, board: StepBoard) -> None:
        """Show the board's active steps now."""

    def stop(self) -> None:
        """Take the live rows away (the lines printed stay)."""
        with self.writing() as ok:
            if ok:
                self.out.flush()


class _PlainScreen(_Screen):
    def __init__(self, out: TextIO, err: TextIO) -> None:
        super().__init__(out, err)
        self._rows: list[str] = []
        self._drawn = 0

    def _clear(self) -> None:
        if self._drawn:
            self.out.write(f"\r\x1b[{self._drawn}A\x1b[J")
            self._drawn = 0

    def _draw(self) -> None:
        width = max(20, shutil.get_terminal_size((80, 24)).columns - 1)
        for text in self._rows:
            self.out.write(text[:width] + "\n")
        self._drawn = len(self._rows)
        self.out.flush()

    def emit(self, text: str, err: bool = False) -> None:
        with self.writing() as ok:
            if not ok:
                return
            self._clear()
            if err:
                self.out.flush()
                self.err.write(text)
                self.err.flush()
            else:
                self.out.write(text)
            self._draw()

    def line(self, text: str) -> None:
        self.emit(text + "\n")

    def redraw(self, board: StepBoard) -> None:
        rows = [board.header(), *("  " + row_text(r) for r in board.rows())]
        with self.writing() as ok:
            if ok:
                self._clear()
                self._rows = rows
                self._draw()

    def stop(self) -> None:
        with self.writing() as ok:
            if ok:
                self._clear()
                self._rows = []
                self.out.flush()


class _RichScreen(_Screen):
    def __init__(self, out: TextIO, err: TextIO) -> None:
        super().__init__(out, err)
        from rich.console import Console

        self._console = Console(file=out, highlight=False, emoji=False, markup=False)
        self._live: Any = None
        self._batch: list[str] = []  # whole lines waiting for the next redraw
        self._batched = 0  # their characters

    def start(self, board: StepBoard) -> None:
        from rich.live import Live

        with self.writing() as ok:
            if ok:
                # No redirect: sys.stdout stays the _Through, whose lines come to emit().
                self._live = Live(
                    self._render(board),
                    console=self._console,
                    auto_refresh=False,
                    transient=True,
                    redirect_stdout=False,
                    redirect_stderr=False,
                )
                self._live.start(refresh=True)

    def _render(self, board: StepBoard) -> Any:
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        grid = Table.grid(padding=(0, 2))
        grid.add_row(Text(board.header(), style="bold"))
        rows: list[Row] = board.rows()
        if rows:
            table = Table.grid(padding=(0, 2))
            for r in rows:
                total = "?" if r.total is None else str(r.total)
                bar: Any = (
                    ProgressBar(total=max(1, r.total), completed=r.done + r.failed, width=24)
                    if r.total
                    else Text("")
                )
                extra = f"{r.running} running" if r.running else ""
                failed = Text(f"{r.failed} failed", style="red") if r.failed else Text("")
                table.add_row(
                    Text(r.step, style="cyan"),
                    bar,
                    Text(f"{r.done}/{total}"),
                    Text(extra),
                    failed,
                    Text(seconds(r.elapsed)),
                )
            grid.add_row(table)
        return grid

    def emit(self, text: str, err: bool = False) -> None:
        # Printing through rich redraws the live rows below what it prints: once per line
        # made an echo of 20,000 lines take a minute. The lines wait for the next redraw
        # (at most REDRAW_SECONDS), or go when many are waiting; in order either way.
        with self.writing() as ok:
            if ok:
                self._batch.append(text)
                self._batched += len(text)
                if self._batched >= BATCH_CHARS:
                    self._print_batch()

    def _print_batch(self) -> None:
        # Holding the lock, within writing().
        from rich.text import Text

        if self._batch:
            text = "".join(self._batch)
            self._batch, self._batched = [], 0
            self._console.print(Text(text.removesuffix("\n")), soft_wrap=True)

    def line(self, text: str) -> None:
        self.emit(text + "\n")

    def redraw(self, board: StepBoard) -> None:
        with self.writing() as ok:
            if ok:
                self._print_batch()
                if self._live is not None:
                    self._live.update(self._render(board), refresh=True)

    def stop(self) -> None:
        with self.writing() as ok:
            if ok:
                self._print_batch()
                if self._live is not None:
                    live, self._live = self._live, None
                    live.stop()


class _Through(io.TextIOBase):
    """``sys.stdout``/``sys.stderr`` while a screen shows: each thread's text goes to the
    screen as whole lines; once the screen stops, straight to the stream."""

    def __init__(self, screen: _Screen, real: TextIO, err: bool) -> None:
        self.screen: _Screen | None = screen
        self.real = real
        self.err = err
        self._pending: dict[int, str] = {}

    def write(self, text: str) -> int:
        screen = self.screen
        if screen is None:
            return self.real.write(text)
        if screen.dead:
            return len(text)  # the display is gone (see _Screen.writing)
        me = threading.get_ident()
        with screen.lock:
            head, newline, tail = (self._pending.pop(me, "") + text).rpartition("\n")
            if tail:
                self._pending[me] = tail
            if newline:
                screen.emit(head + "\n", self.err)
        return len(text)

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.real.flush()

    def finish(self) -> None:
        """Stop routing: what is pending goes out as it is."""
        screen, self.screen = self.screen, None
        if screen is not None:
            with screen.lock:
                rest, self._pending = "".join(self._pending.values()), {}
            if rest and not screen.dead:
                self.real.write(rest)

    def isatty(self) -> bool:
        return _isatty(self.real)

    def fileno(self) -> int:
        return self.real.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.real, "encoding", "utf-8")


_SCREENS = {"lines": _Screen, "plain": _PlainScreen, "rich": _RichScreen}


@contextlib.contextmanager
def showing(mode: str) -> Iterator[_Screen | None]:
    """Within: the screen of ``mode`` (None for ``off``) owns ``sys.stdout`` (and
    ``sys.stderr`` when it is a terminal and the screen is live)."""
    if mode == "off":
        yield None
        return
    out, err = sys.stdout, sys.stderr
    screen = _SCREENS[mode](out, err)
    wrapped = [_Through(screen, out, False)]
    sys.stdout = wrapped[0]
    if mode != "lines" and _isatty(err):
        wrapped.append(_Through(screen, err, True))
        sys.stderr = wrapped[1]
    try:
        yield screen
    finally:
        screen.stop()
        for through in wrapped:
            through.finish()
        if sys.stdout is wrapped[0]:
            sys.stdout = out
        if len(wrapped) > 1 and sys.stderr is wrapped[1]:
            sys.stderr = err


async def watch(
    screen: _Screen, graph: FlowGraph, reader: AsyncIterator[Event], live: bool
) -> None:
    """Show the run whose events ``reader`` yields until its last one; never raises (a run
    that fails before it is recorded says so itself)."""
    board = StepBoard(graph)
    screen.start(board)
    async with anyio.create_task_group() as tg:
        if live:
            tg.start_soon(_redraw, screen, board)
        try:
            async for ev in reader:
                for text in board.feed(ev):
                    screen.line(text)
        except Exception:  # the run's own error: the run reports it
            pass
        tg.cancel_scope.cancel()


async def _redraw(screen: _Screen, board: StepBoard) -> None:
    while True:
        screen.redraw(board)
        await anyio.sleep(REDRAW_SECONDS)


async def run_shown(
    start: Callable[[RunEvents | None], Awaitable[T]], graph: FlowGraph, mode: str
) -> T:
    """``await start(hub)`` while the screen of ``mode`` shows the run's events from ``hub``
    (``start(None)`` for ``off``); the run's outcome, once the screen has shown its end."""
    if mode == "off":
        return await start(None)
    hub = RunEvents()
    reader = hub.reader()  # before the run starts: it reads every event
    error: Exception | None = None
    result: T | None = None
    with showing(mode) as screen:
        assert screen is not None
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch, screen, graph, reader, mode != "lines")
            try:
                result = await start(hub)
            except Exception as exc:
                error = exc
            finally:
                if hub.finished or hub.error is not None:
                    # The screen shows the last events, then ends; not forever.
                    tg.cancel_scope.deadline = anyio.current_time() + DRAIN_SECONDS
                else:
                    tg.cancel_scope.cancel()
    if error is not None:
        raise error
    return result  # type: ignore[return-value]
