"""``python flow.py run`` and its stdout: the rich display echoes task output in batches,
a reader of stdout that goes away never fails the run, and a missing rich is one line."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import textwrap
from pathlib import Path

import pytest

from asyncflow import Flow
from tests.test_cli_progress import _env, on_pty

FLOW = """
import asyncio, sys
from asyncflow import FlowSpec, Parameter, step

class EchoFlow(FlowSpec):
    n = Parameter("n", default=1)
    lines = Parameter("lines", default=0)
    pause = Parameter("pause", default=0.0)
    odd = Parameter("odd", default=0)

    @step
    def start(self):
        if self.odd:
            print("name \\udcff and \\ud800 end")
            print("carriage\\rRETURN")
            print("\\x1b[31mred\\x1b[0m")
        for i in range(self.lines if self.n == 1 else 0):
            print(f"line {i}")
        self.items = list(range(self.n))
        self.next(self.body, foreach="items")

    @step
    async def body(self):
        await asyncio.sleep(self.pause)
        for i in range(self.lines if self.n > 1 else 0):
            print(f"line {i} of {self.input}")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    EchoFlow.main()
"""


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    path = tmp_path / "echo_flow.py"
    path.write_text(textwrap.dedent(FLOW))
    return path


def test_on_a_terminal_rich_echoes_every_line_in_order_above_the_rows_in_batches(
    flow: Path,
) -> None:
    count = 2000
    args = [sys.executable, str(flow), "run", "--store", "s.db", "--lines", str(count)]
    raw = b"".join(c for _, c in on_pty(args, flow.parent, _env(TERM="xterm")))
    text = raw.decode().replace("\r\n", "\n")
    echoed = list(re.finditer(r"\[EchoFlow/1/start/1\] line (\d+)\n", text))
    # every line, once, in order, prefixed
    assert [int(m.group(1)) for m in echoed] == list(range(count))
    # above the rows: each line in a block of whole lines printed right after the rows
    # were cleared (never in the middle of the rows)
    for m in echoed:
        before = text[: m.start()]
        block = before[before.rfind("\x1b") :]
        assert re.fullmatch(r"\x1b\[2K([^\x1b]*\n)?", block), text[m.start() - 80 : m.end()]
    # in batches: the rows are redrawn (cursor up) a few times a second, not once per line
    redraws = text.count("\x1b[1A")
    assert redraws < count / 10, redraws
    assert "Run EchoFlow/1 succeeded in " in text


@pytest.mark.parametrize("lines", [100, 0])
@pytest.mark.parametrize("progress", ["", "off"])
def test_run_piped_to_a_reader_that_goes_away_is_recorded_succeeded_and_exits_quietly(
    flow: Path, lines: int, progress: str
) -> None:
    cmd = (
        f"{sys.executable} {flow} run --store s.db --n 30 --lines {lines} --pause 0.2 | head -1"
        "; echo rc=${PIPESTATUS[0]} >&2"
    )
    env = _env(ASYNCFLOW_PROGRESS=progress) if progress else _env()
    out = subprocess.run(
        ["bash", "-c", cmd], cwd=flow.parent, env=env, capture_output=True, text=True, timeout=120
    )
    # the run's own exit code (it succeeded), nothing on stderr: no traceback, no error
    assert out.stderr == "rc=0\n", out.stderr
    assert len(out.stdout.splitlines()) == 1
    run = Flow("EchoFlow", store=str(flow.parent / "s.db")).latest_run
    assert run.status == "succeeded"
    for task in run["body"]:  # the output is stored whole though nobody read the echo
        want = "".join(f"line {i} of {task.index}\n" for i in range(lines))
        assert (task.stdout or "") == want


@pytest.mark.parametrize("progress", ["", "off"])
def test_a_step_printing_a_lone_surrogate_succeeds_whatever_the_echo_goes_to(
    flow: Path, progress: str
) -> None:
    env = _env(ASYNCFLOW_PROGRESS=progress) if progress else _env()
    out = subprocess.run(
        [sys.executable, str(flow), "run", "--store", "s.db", "--odd", "1"],
        cwd=flow.parent,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert b"[EchoFlow/1/start/1] name \\udcff and \\ud800 end\n" in out.stdout
    assert b"[EchoFlow/1/start/1] carriage\n[EchoFlow/1/start/1] RETURN\n" in out.stdout
    # off a terminal, no carriage return; the step's own escape sequences pass (as tee's would)
    assert b"\r" not in out.stdout
    assert b"[EchoFlow/1/start/1] \x1b[31mred\x1b[0m\n" in out.stdout


def test_on_a_terminal_a_lone_surrogate_and_a_carriage_return_keep_the_prefix(
    flow: Path,
) -> None:
    args = [sys.executable, str(flow), "run", "--store", "s.db", "--odd", "1"]
    raw = b"".join(c for _, c in on_pty(args, flow.parent, _env(TERM="xterm")))
    assert b"[EchoFlow/1/start/1] name \\udcff and \\ud800 end\n" in raw.replace(b"\r\n", b"\n")
    assert b"[EchoFlow/1/start/1] carriage\r\n" in raw
    assert b"[EchoFlow/1/start/1] RETURN\r\n" in raw


def test_progress_rich_without_rich_is_one_line_exit_2_and_nothing_runs(flow: Path) -> None:
    hidden = flow.parent / "norich" / "rich"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('rich is not installed here')\n")
    path = os.pathsep.join([str(hidden.parent), os.environ.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, str(flow), "run", "--store", "s.db"],
        cwd=flow.parent,
        env=_env(ASYNCFLOW_PROGRESS="rich", PYTHONPATH=path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert (
        "pip install 'asyncflow[rich]'" in out.stderr and "ASYNCFLOW_PROGRESS=plain" in out.stderr
    )
    assert not (flow.parent / "s.db").exists()


@pytest.mark.parametrize("mode", ["plain", "rich"])
def test_a_terminal_closed_mid_run_leaves_the_run_succeeded_and_no_traceback(
    flow: Path, mode: str
) -> None:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    args = [sys.executable, str(flow), "run", "--store", "s.db", "--n", "20", "--lines", "50"]
    args += ["--pause", "0.3"]
    proc = subprocess.Popen(
        args,
        cwd=flow.parent,
        stdin=slave,
        stdout=slave,
        stderr=subprocess.PIPE,
        env=_env(TERM="xterm", ASYNCFLOW_PROGRESS=mode),
    )
    os.close(slave)
    select.select([master], [], [], 30)
    os.read(master, 1024)  # it has begun drawing; now the terminal goes away
    os.close(master)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and b"Traceback" not in err, err
    assert Flow("EchoFlow", store=str(flow.parent / "s.db")).latest_run.status == "succeeded"
