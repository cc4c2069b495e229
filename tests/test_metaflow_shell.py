"""The shell as Metaflow users type it (issue 11, item 5): each task's echoed output in whole
lines prefixed with its pathspec, options before the command, and a @timeout that fires
ending the command then (README, "The command line")."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from asyncflow import Flow

WIDTH = 24  # tasks of each foreach, all printing at once (max-workers 16)
PIECES = 6  # lines each task prints, each in three pieces

ECHO_FLOW = f"""
import asyncio
import time

from asyncflow import FlowSpec, current, step


def pieces():
    # One line in three writes, with a pause between them: another task writes in between.
    me = current.task_id
    return [f"<{{me}}", f"-{{me}}-", f"{{me}}>"]


class PiecesFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range({WIDTH}))
        self.next(self.plain, foreach="items")

    @step
    def plain(self):
        for _ in range({PIECES}):
            a, b, c = pieces()
            print(a, end="")
            time.sleep(0.002)
            print(b, end="", flush=True)
            time.sleep(0.002)
            print(c)
        print("tail without a newline", end="")
        self.next(self.join_plain)

    @step
    def join_plain(self, inputs):
        self.next(self.fan)

    @step
    def fan(self):
        self.items = list(range({WIDTH}))
        self.next(self.coro, foreach="items")

    @step
    async def coro(self):
        for _ in range({PIECES}):
            a, b, c = pieces()
            print(a, end="")
            await asyncio.sleep(0.002)
            print(b, end="")
            await asyncio.sleep(0.002)
            print(c)
        print("tail without a newline", end="")
        self.next(self.join_coro)

    @step
    def join_coro(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    PiecesFlow()
"""

TASK_LINE = re.compile(r"\[PiecesFlow/(\d+)/(plain|coro)/(\d+)\] (.*)")


def write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(textwrap.dedent(text))
    return path


def python(tmp: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=tmp, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_the_echo_of_concurrent_tasks_is_whole_lines_each_prefixed_with_its_task(
    tmp_path: Path, executor: str
) -> None:
    flow = write(tmp_path, "pieces.py", ECHO_FLOW)
    out = python(
        tmp_path, str(flow), "run", "--store", "s.db", "--max-workers", "16",
        "--executor", executor,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    seen: dict[tuple[str, str], list[str]] = {}
    for line in out.stdout.splitlines():
        if line.startswith(("Run PiecesFlow/", "step ")):
            continue  # the command's own lines: started, a step's progress, succeeded
        match = TASK_LINE.fullmatch(line)
        assert match, f"not a whole line of one task: {line!r}"
        _, step, task, text = match.groups()
        whole = f"<{task}-{task}-{task}>"
        assert text in (whole, "tail without a newline"), f"mixed line: {line!r}"
        seen.setdefault((step, task), []).append(text)
    for step in ("plain", "coro"):
        tasks = [lines for (s, _), lines in seen.items() if s == step]
        assert len(tasks) == WIDTH
        for lines in tasks:
            # every line echoed once, and the unfinished tail too, as a line of its own
            assert len(lines) == PIECES + 1 and lines[-1] == "tail without a newline"
    # what is stored is exactly what each step wrote: no prefixes, no added newline
    run = Flow("PiecesFlow", store=str(tmp_path / "s.db")).latest_run
    assert run is not None
    for step in ("plain", "coro"):
        for task in run[step]:
            me = task.id
            assert task.stdout == f"<{me}-{me}-{me}>\n" * PIECES + "tail without a newline"


HELLO_FLOW = """
from asyncflow import FlowSpec, step


class HelloFlow(FlowSpec):
    @step
    def start(self):
        print("hello from start")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    HelloFlow()
"""


def test_options_before_the_command_work_as_metaflow_takes_them(tmp_path: Path) -> None:
    flow = write(tmp_path, "hello.py", HELLO_FLOW)
    out = python(tmp_path, str(flow), "--quiet", "--store", "before.db", "--no-pylint", "run")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "before.db").exists() and not (tmp_path / "asyncflow.db").exists()
    assert "hello from start" not in out.stdout  # --quiet: no echo
    assert "started" not in out.stdout
    assert "Run HelloFlow/1 succeeded" in out.stdout
    run = Flow("HelloFlow", store=str(tmp_path / "before.db"))["1"]
    assert run["start"].task.stdout == "hello from start\n"  # captured as always

    # resume too; and the same options after the command still work
    out = python(tmp_path, str(flow), "--store", "before.db", "--quiet", "resume")
    assert out.returncode == 0, out.stderr
    assert "resumed HelloFlow/1; store: " in out.stdout and "before.db" in out.stdout
    out = python(tmp_path, str(flow), "--no-pylint", "run", "--store", "after.db", "--quiet")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "after.db").exists() and "hello from start" not in out.stdout


def test_an_option_after_the_command_wins_over_the_same_before_it(tmp_path: Path) -> None:
    flow = write(tmp_path, "hello.py", HELLO_FLOW)
    out = python(tmp_path, str(flow), "--store", "before.db", "run", "--store", "after.db")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "after.db").exists() and not (tmp_path / "before.db").exists()
    assert "[HelloFlow/1/start/1] hello from start" in out.stdout  # echo on: no --quiet


def test_help_says_no_pylint_is_accepted_and_ignored(tmp_path: Path) -> None:
    flow = write(tmp_path, "hello.py", HELLO_FLOW)
    out = python(tmp_path, str(flow), "--help")
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    assert "--no-pylint" in text and "ignored" in text


TIMEOUT_FLOW = """
import time

from asyncflow import FlowSpec, catch, step, timeout


class SlowFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.slow)

    {catch}
    @timeout(seconds=1)
    @step
    def slow(self):
        time.sleep(30)  # a plain step: its thread cannot be stopped
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SlowFlow()
"""
BOUND = 15  # seconds; the step would sleep 30


def test_a_timeout_that_fires_ends_the_command_then(tmp_path: Path) -> None:
    flow = write(tmp_path, "slow.py", TIMEOUT_FLOW.replace("{catch}", ""))
    began = time.monotonic()
    out = python(tmp_path, str(flow), "run", "--store", "s.db", timeout=120)
    took = time.monotonic() - began
    assert out.returncode == 1, out.stderr
    assert "ran longer than its @timeout of 1 s" in out.stderr
    assert took < BOUND, f"the command ended {took:.1f} s after it started"
    # the store was closed properly before the quick exit: the failed run reads as such
    run = Flow("SlowFlow", store=str(tmp_path / "s.db"))["1"]
    assert run.status == "failed" and run["slow"].task.status == "failed"


def test_a_caught_timeout_ends_the_command_when_the_run_does(tmp_path: Path) -> None:
    flow = write(tmp_path, "slow.py", TIMEOUT_FLOW.replace("{catch}", '@catch(var="oops")'))
    began = time.monotonic()
    out = python(tmp_path, str(flow), "run", "--store", "s.db", timeout=120)
    took = time.monotonic() - began
    assert out.returncode == 0, out.stderr
    assert "Run SlowFlow/1 succeeded" in out.stdout
    assert took < BOUND, f"the command ended {took:.1f} s after it started"
    run = Flow("SlowFlow", store=str(tmp_path / "s.db"))["1"]
    assert run.status == "succeeded" and run["slow"].task.status == "caught"


def test_a_run_with_no_abandoned_step_exits_normally_running_atexit(tmp_path: Path) -> None:
    # the quick exit (which skips atexit handlers) is kept for steps left running
    marker = tmp_path / "atexit-ran"
    text = HELLO_FLOW.replace(
        "class HelloFlow",
        f"import atexit, pathlib\natexit.register(pathlib.Path({str(marker)!r}).touch)\n\n\n"
        "class HelloFlow",
    )
    flow = write(tmp_path, "hello.py", text)
    out = python(tmp_path, str(flow), "run", "--store", "s.db")
    assert out.returncode == 0, out.stderr
    assert marker.exists()


def test_the_quick_exit_is_for_threads_the_commands_own_run_abandoned(tmp_path: Path) -> None:
    # An embedding ran a flow whose timed-out thread still sleeps; main() of another flow in
    # the same process then ends as main() does (SystemExit), not with os._exit.
    slow = TIMEOUT_FLOW.replace("{catch}", "").replace("time.sleep(30)", "time.sleep(4)")
    slow = slow.split('if __name__ == "__main__":')[0]
    hello = HELLO_FLOW.split('if __name__ == "__main__":')[0]
    script = write(
        tmp_path,
        "embed.py",
        slow.replace("import time", "import time\nimport anyio")
        + hello.replace("from asyncflow import FlowSpec, step", "")
        + textwrap.dedent(
            """
            async def first():
                try:
                    await SlowFlow(store="a.db", echo=False).run()
                except Exception as exc:
                    print("first run:", type(exc).__name__, flush=True)

            anyio.run(first)
            try:
                HelloFlow.main(["run", "--store", "b.db", "--quiet"])
            except SystemExit as exc:
                print("main ended with SystemExit", exc.code, flush=True)
            """
        ),
    )
    out = python(tmp_path, str(script), timeout=120)
    assert out.returncode == 0, out.stderr
    assert "first run: StepFailed" in out.stdout
    assert "main ended with SystemExit 0" in out.stdout
