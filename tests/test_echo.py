"""The echo of task output is best effort, and a task's sys.stdout is a full text stream:
what a step writes is captured whatever the echo's stream does (a closed pipe, an encoding
that cannot show it), bytes written to ``sys.stdout.buffer`` included."""

from __future__ import annotations

import contextlib
import os
import pty
import sys
from pathlib import Path
from typing import TextIO

import pytest

from tests.flows.echo_flows import BytesFlow, ChattyFlow, ReturnFlow, StreamLookFlow, SurrogateFlow

CHATTY = "".join(f"line {i}\n" for i in range(200))


def _swap(stream: TextIO) -> TextIO:
    saved, sys.stdout = sys.stdout, stream
    return saved


def _broken_pipe(buffering: int) -> TextIO:
    """A text stream on a pipe whose reader has gone: writes (line-buffered) or flushes
    (buffered) raise BrokenPipeError (Python ignores SIGPIPE)."""
    r, w = os.pipe()
    os.close(r)
    return open(w, "w", buffering=buffering, encoding="utf-8")


@pytest.mark.anyio
@pytest.mark.parametrize("buffering", [1, -1])
async def test_an_echo_to_a_closed_pipe_never_fails_a_task_and_the_output_is_still_stored(
    store: str, buffering: int
) -> None:
    pipe = _broken_pipe(buffering)
    saved = _swap(pipe)
    try:
        run = await ChattyFlow(store=store).run()
    finally:
        sys.stdout = saved
        with contextlib.suppress(BrokenPipeError):
            pipe.close()  # what it holds can never be written
    assert run.status == "succeeded"
    assert run["start"].task.stdout == CHATTY


@pytest.mark.anyio
async def test_an_echo_to_a_closed_file_never_fails_a_task(store: str, tmp_path: Path) -> None:
    closed = open(tmp_path / "echo.txt", "w", encoding="utf-8")  # noqa: SIM115
    closed.close()
    saved = _swap(closed)
    try:
        run = await ChattyFlow(store=store).run()
    finally:
        sys.stdout = saved
    assert run.status == "succeeded"
    assert run["start"].task.stdout == CHATTY


@pytest.mark.anyio
async def test_a_lone_surrogate_is_echoed_escaped_and_never_fails_the_task(
    store: str, tmp_path: Path
) -> None:
    echo = open(tmp_path / "echo.txt", "w", encoding="utf-8", errors="strict")  # noqa: SIM115
    saved = _swap(echo)
    try:
        run = await SurrogateFlow(store=store).run()
    finally:
        sys.stdout = saved
        echo.close()
    assert run.status == "succeeded"
    pathspec = run["start"].task.pathspec
    shown = (tmp_path / "echo.txt").read_text(encoding="utf-8")
    assert shown == f"[{pathspec}] name \\udcff and \\ud800 end\n[{pathspec}] after it\n"
    assert run["start"].task.stdout == "name \\udcff and \\ud800 end\nafter it\n"


@pytest.mark.anyio
async def test_bytes_written_to_stdout_buffer_are_captured_in_order_as_text(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = await BytesFlow(store=store).run()
    task = run["start"].task
    assert task.stdout == ("text first\nbad utf8 \\xff\\xfe end\nsplit \u20ac whole\ntext last\n")
    assert task.stderr == "on stderr \\xc3(\n"
    out = capsys.readouterr().out
    assert f"[{task.pathspec}] split \u20ac whole\n" in out
    assert f"[{task.pathspec}] bad utf8 \\xff\\xfe end\n" in out


@pytest.mark.anyio
async def test_a_task_sys_stdout_is_a_text_stream_of_its_own(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    master, slave = pty.openpty()  # the echo goes to a terminal; the task's stdout is not one
    terminal = open(slave, "w", encoding="utf-8")  # noqa: SIM115
    saved = _swap(terminal)
    try:
        run = await StreamLookFlow(store=store).run()
    finally:
        sys.stdout = saved
        terminal.close()
        os.close(master)
    data = run["start"].task.data
    assert data.encoding == "utf-8"
    assert data.errors == "strict"
    assert data.isatty is False and data.writable is True and data.buffer_writable is True
    assert data.line_buffering in (True, False)
    assert data.fileno == slave  # the real stream's: a subprocess given it still works
    assert run["start"].task.stdout == "one\ntwo\n"


@pytest.mark.anyio
async def test_a_carriage_return_in_a_task_line_starts_a_new_prefixed_echo_line(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = await ReturnFlow(store=store).run()
    task = run["start"].task
    p = f"[{task.pathspec}] "
    out = capsys.readouterr().out
    assert out == "".join(
        p + line + "\n"
        for line in (
            "carriage",
            "RETURN overwrites",
            " 10%",
            " 20%",
            "100%",
            "windows",
            "line",
            "last",
        )
    )
    # what is stored is what the step wrote, carriage returns and all
    assert task.stdout == (
        "carriage\rRETURN overwrites\n\r 10%\r 20%\r100%\nwindows\r\nline\r\nlast\r"
    )
