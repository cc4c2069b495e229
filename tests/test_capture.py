"""Per-task stdout/stderr while tasks print concurrently; the echo; output outside tasks."""

from __future__ import annotations

import sys

import anyio
import pytest

from asyncflow import Run
from tests.flows.capture import LINES, PrintFlow, err_line, out_line


def expected_stdout(step: str, index: int) -> str:
    text = "".join(out_line(step, index, k) + "\n" for k in range(LINES))
    return text + (f"partial line of {index}\n" if step == "abody" else "")


def expected_stderr(step: str, index: int) -> str:
    return "".join(err_line(step, index, k) + "\n" for k in range(LINES))


def assert_overlapping(run: Run, step: str) -> None:
    spans = [(t.started_at, t.finished_at) for t in run[step]]
    assert max(s for s, _ in spans) < min(e for _, e in spans), f"{step} tasks did not overlap"


@pytest.mark.anyio
async def test_each_task_captures_only_its_own_output(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = await PrintFlow(store=store).run()
    for step in ("abody", "pbody"):
        assert_overlapping(run, step)  # the premise: they printed at the same time
        tasks = list(run[step])
        assert [t.index for t in tasks] == [0, 1, 2, 3]
        for task in tasks:
            assert task.stdout == expected_stdout(step, task.index), task.pathspec
            assert task.stderr == expected_stderr(step, task.index), task.pathspec
    assert run["start"].task.stdout == "start says hi\n"
    assert run["start"].task.stderr == ""
    assert run["join"].task.stdout == ""
    assert run["end"].task.stdout == ""


@pytest.mark.anyio
async def test_output_is_echoed_with_the_task_pathspec(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = await PrintFlow(store=store).run()
    captured = capsys.readouterr()
    out, err = captured.out, captured.err
    assert f"[{run['start'].task.pathspec}] start says hi\n" in out
    for step in ("abody", "pbody"):
        for task in run[step]:
            for k in range(LINES):
                assert f"[{task.pathspec}] {out_line(step, task.index, k)}\n" in out
                assert f"[{task.pathspec}] {err_line(step, task.index, k)}\n" in err
            if step == "abody":
                assert f"[{task.pathspec}] partial " in out
    # every line is prefixed, a line written in two pieces too (echoed whole)
    for line in out.splitlines():
        assert line.startswith("[PrintFlow/"), line
    for line in err.splitlines():
        assert line.startswith("[PrintFlow/"), line
    assert out.count("start says hi") == 1  # echoed once, not twice


@pytest.mark.anyio
async def test_echo_off_keeps_the_terminal_quiet_but_still_captures(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = await PrintFlow(store=store, echo=False).run()
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    task = run["pbody"].task
    assert task.stdout == expected_stdout("pbody", task.index)
    assert task.stderr == expected_stderr("pbody", task.index)


@pytest.mark.anyio
async def test_print_outside_tasks_is_unaffected(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    stdout_before, stderr_before = sys.stdout, sys.stderr
    done = anyio.Event()

    async def outsider() -> None:
        await anyio.sleep(0.01)
        print("outside during the run")
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(outsider)
        run = await PrintFlow(store=store).run()
    assert done.is_set()

    assert sys.stdout is stdout_before and sys.stderr is stderr_before
    print("after the run")
    print("after, on stderr", file=sys.stderr)
    captured = capsys.readouterr()
    assert "outside during the run\n" in captured.out.splitlines(keepends=True)
    # printed while tasks were echoing, yet neither prefixed nor captured
    assert captured.out.index("outside during") < captured.out.rindex("[PrintFlow/")
    assert captured.out.endswith("after the run\n")
    assert "\nafter the run\n" in captured.out or captured.out.startswith("after the run\n")
    assert captured.err.endswith("after, on stderr\n")
    for step in run:
        for task in step:
            assert "outside" not in task.stdout, task.pathspec
            assert "after" not in task.stdout, task.pathspec
