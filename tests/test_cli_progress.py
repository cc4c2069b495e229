"""The command line watching runs: live progress of `run` (off a terminal, on a real
pseudo-terminal, plain and rich), `--quiet`, `asyncflow events [--follow] [--json]` and
`asyncflow logs --follow` from a second process, and hostile text escaped. Real
subprocesses throughout."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import textwrap
import time
from pathlib import Path

import pytest

FLOW = """
import os, sys, time
from asyncflow import FlowSpec, Parameter, current, retry, step

class ProgFlow(FlowSpec):
    n = Parameter("n", default=7)
    fail = Parameter("fail", default=-1)
    pause = Parameter("pause", default=0.0)
    hostile = Parameter("hostile", default=0)
    flaky = Parameter("flaky", default=-1)

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.work, foreach="items")

    @retry(times=1)
    @step
    def work(self):
        if self.input == self.flaky and current.retry_count == 0:
            raise RuntimeError("first try")
        if self.hostile:
            print("evil \\x1b[31mred\\x1b]0;pwned\\x07 end", flush=True)
        time.sleep(self.pause)
        if self.input == self.fail:
            raise ValueError("boom")
        print(f"work {self.input}")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.count = len(list(inputs))
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    ProgFlow.main()
"""

ECHO = re.compile(r"\[ProgFlow/1/work/\d+\] work (\d+)")


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("ASYNCFLOW_STORE", "ASYNCFLOW_PROGRESS")
    }
    env.update(extra)
    return env


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    path = tmp_path / "prog.py"
    path.write_text(textwrap.dedent(FLOW))
    return path


def run_flow(flow: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(flow), "run", "--store", "s.db", *args],
        cwd=flow.parent,
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(**env),
    )


def asyncflow(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asyncflow", *args, "--store", "s.db"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
    )


# --- off a terminal ----------------------------------------------------------------------------


def test_off_a_terminal_run_prints_one_line_per_finished_step_with_done_over_total(
    flow: Path,
) -> None:
    out = run_flow(flow)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "\r" not in out.stdout and "\x1b" not in out.stdout  # no animation
    steps = [line for line in lines if line.startswith("step ")]
    assert [s.split(" in ")[0] for s in steps] == [
        "step start: 1/1 done",
        "step work: 7/7 done",
        "step join: 1/1 done",
        "step end: 1/1 done",
    ]
    assert lines[0] == "Run ProgFlow/1 started"
    assert lines[-1].startswith("Run ProgFlow/1 succeeded in ")
    # The echo of task output goes on, whole lines, before the work step's line.
    echoed = [ECHO.fullmatch(line) for line in lines[1 : lines.index(steps[1])]]
    assert sorted(int(m.group(1)) for m in echoed if m) == list(range(7))
    others = [line for line in lines if not ECHO.fullmatch(line)]
    assert len(others) == 6  # started, 4 steps, succeeded


def test_off_a_terminal_a_failed_task_prints_a_failure_line(flow: Path) -> None:
    out = run_flow(flow, "--fail", "3")
    assert out.returncode == 1
    failure = [line for line in out.stdout.splitlines() if line.startswith("task ")]
    assert len(failure) == 2  # its first attempt (@retry), then the task
    assert re.fullmatch(
        r"task (ProgFlow/1/work/\d+) attempt 1 failed: ValueError: boom; .*", failure[0]
    )
    assert failure[1] == f"task {failure[0].split()[1]} failed after {failure[1].split()[-1]}"
    assert re.fullmatch(r"task ProgFlow/1/work/\d+ failed after \S+s", failure[1]), failure
    work = [line for line in out.stdout.splitlines() if line.startswith("step work: ")]
    assert len(work) == 1 and re.match(r"step work: 6/7 done, 1 failed in ", work[0]), work
    assert out.stderr.count("\n") == 1 and "boom" in out.stderr


def test_off_a_terminal_a_retried_attempt_prints_a_line_and_the_step_still_completes(
    flow: Path,
) -> None:
    out = run_flow(flow, "--flaky", "4")
    assert out.returncode == 0, out.stderr
    retried = [line for line in out.stdout.splitlines() if line.startswith("task ")]
    assert len(retried) == 1, out.stdout
    assert re.fullmatch(
        r"task ProgFlow/1/work/\d+ attempt 1 failed: RuntimeError: first try; retrying in \S+s",
        retried[0],
    )
    assert any(line.startswith("step work: 7/7 done in ") for line in out.stdout.splitlines())


def test_quiet_stdout_holds_at_most_the_final_line(flow: Path) -> None:
    out = run_flow(flow, "--quiet")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("\n") == 1
    assert out.stdout.startswith("Run ProgFlow/1 succeeded in ")
    failed = run_flow(flow, "--quiet", "--fail", "2")
    assert failed.returncode == 1 and failed.stdout == ""
    assert failed.stderr.count("\n") == 1 and "boom" in failed.stderr


def test_an_unknown_progress_display_is_one_line_exit_2(flow: Path) -> None:
    out = run_flow(flow, ASYNCFLOW_PROGRESS="fancy")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "ASYNCFLOW_PROGRESS='fancy'" in out.stderr
    assert "Traceback" not in out.stderr and not (flow.parent / "s.db").exists()


# --- on a terminal -----------------------------------------------------------------------------


def on_pty(args: list[str], cwd: Path, env: dict[str, str]) -> list[tuple[float, bytes]]:
    """Run ``args`` with stdout and stderr on a new pseudo-terminal (120 x 40); what it
    wrote, in chunks with the time each was read."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(args, cwd=cwd, stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks: list[tuple[float, bytes]] = []
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append((time.monotonic(), data))
        assert proc.wait(timeout=30) == 0, b"".join(c for _, c in chunks)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return chunks


@pytest.mark.parametrize("mode", ["plain", "rich"])
def test_on_a_terminal_run_shows_live_rows_and_keeps_the_echo_whole(flow: Path, mode: str) -> None:
    env = _env(TERM="xterm", ASYNCFLOW_PROGRESS="plain") if mode == "plain" else _env(TERM="xterm")
    args = [sys.executable, str(flow), "run", "--store", "s.db", "--pause", "0.4"]
    args += ["--max-workers", "3"]  # waves: rows show 3/7 and 6/7 between them
    chunks = on_pty(args, flow.parent, env)
    raw = b"".join(c for _, c in chunks).decode().replace("\r\n", "\n")
    # Live rows, redrawn in place: cursor moves up, and the work step's row with n/7.
    assert "\x1b[" in raw and re.search(r"\x1b\[\d*A", raw)
    assert re.search(r"work\S*\s+(\S+\s+)?\d/(\?|7)", raw), raw
    assert re.search(r"\b[36]/7\b", raw), raw  # a foreach's done/total between waves
    assert "Run ProgFlow/1  " in raw  # the header row
    if mode == "rich":
        assert "\u2501" in raw  # rich's progress bar for the foreach
    # The finished-step lines stay, above the rows; the echo is whole lines.
    for step, count in (("start", "1/1"), ("work", "7/7"), ("join", "1/1"), ("end", "1/1")):
        assert f"step {step}: {count} done in " in raw
    # Each echoed line is printed where the live rows were, just cleared (plain: clear
    # below; rich: clear line, then the lines of a redraw tick as one block), never in the
    # middle of them.
    cleared = r"\x1b\[J" if mode == "plain" else r"\x1b\[2K(?:[^\x1b]*\n)?"
    for i in range(7):
        assert re.search(rf"{cleared}\[ProgFlow/1/work/\d+\] work {i}\n", raw), raw
    assert "Run ProgFlow/1 succeeded in " in raw


def test_on_a_terminal_without_rich_the_plain_rows_show(flow: Path) -> None:
    hidden = flow.parent / "norich" / "rich"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('rich is not installed here')\n")
    path = os.pathsep.join([str(hidden.parent), os.environ.get("PYTHONPATH", "")])
    env = _env(TERM="xterm", PYTHONPATH=path)
    args = [sys.executable, str(flow), "run", "--store", "s.db", "--pause", "0.3"]
    raw = b"".join(c for _, c in on_pty(args, flow.parent, env)).decode()
    assert "\x1b[J" in raw and "\x1b[?25l" not in raw  # plain's clear-below; no rich
    assert "step work: 7/7 done in " in raw


def test_on_a_terminal_a_400_task_run_shows_progress_at_once(flow: Path) -> None:
    env = _env(TERM="xterm", ASYNCFLOW_PROGRESS="plain")
    args = [sys.executable, str(flow), "run", "--store", "s.db", "--n", "400"]
    chunks = on_pty(args, flow.parent, env)
    first = chunks[0][0]
    seen = b""
    for at, data in chunks:
        seen += data
        if re.search(rb"work  \d+/(\?|400) done, \d+ running", seen):
            shown = at - first
            break
    else:
        raise AssertionError("no row of the work step was drawn")
    # From the first thing drawn (the header, before the run is recorded) to the row of the
    # foreach's running tasks: the README says within about 0.2 s; loose here for CI.
    assert shown < 1.5, shown


def test_on_a_terminal_a_foreach_row_shows_its_total_before_any_task_of_it_ends(
    flow: Path,
) -> None:
    env = _env(TERM="xterm", ASYNCFLOW_PROGRESS="plain")
    args = [sys.executable, str(flow), "run", "--store", "s.db", "--n", "4", "--pause", "2.0"]
    raw = b"".join(c for _, c in on_pty(args, flow.parent, env))
    first_row = re.search(rb"work  \d+/(\?|\d+) done", raw)
    assert first_row is not None and first_row.group(0) == b"work  0/4 done", raw[-2000:]
    assert b"work  0/? done" not in raw


# --- asyncflow events ----------------------------------------------------------------------------


def test_events_json_parses_and_seq_strictly_increases(flow: Path) -> None:
    assert run_flow(flow, "--quiet").returncode == 0
    out = asyncflow(flow.parent, "events", "ProgFlow/1", "--json")
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1))
    assert events[0]["kind"] == "run_started" and events[-1]["kind"] == "run_finished"
    assert events[-1]["status"] == "succeeded"
    assert {"seq", "kind", "run_id", "at"} <= set(events[1])
    human = asyncflow(flow.parent, "events", "ProgFlow/1")
    assert human.returncode == 0
    lines = human.stdout.splitlines()
    assert len(lines) == len(events)
    assert [int(line.split()[0]) for line in lines] == seqs
    assert "run_finished" in lines[-1] and "ProgFlow/1  succeeded" in lines[-1]


def test_events_of_an_unknown_run_is_one_line_exit_2(flow: Path) -> None:
    assert run_flow(flow, "--quiet").returncode == 0
    out = asyncflow(flow.parent, "events", "ProgFlow/9")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "flow ProgFlow has no run 9" in out.stderr
    shape = asyncflow(flow.parent, "events", "ProgFlow/1/start")
    assert shape.returncode == 2 and "expected Flow/run" in shape.stderr


def _start_slow(flow: Path, *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, str(flow), "run", "--store", "s.db", *args],
        cwd=flow.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "Run ProgFlow/1 started\n"
    return proc


def _follower(flow: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "asyncflow", *args, "--store", "s.db"],
        cwd=flow.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )


def test_events_and_logs_follow_a_run_of_another_process_to_its_end(flow: Path) -> None:
    run = _start_slow(flow, "--n", "4", "--pause", "0.8", "--max-workers", "2", "--hostile", "1")
    try:
        events = _follower(flow, "events", "ProgFlow/1", "--follow", "--json")
        logs = _follower(flow, "logs", "ProgFlow/1/work", "--follow")
        time.sleep(0.3)
        assert run.poll() is None  # both started while the run runs
        ev_out, ev_err = events.communicate(timeout=60)
        logs_out, logs_err = logs.communicate(timeout=60)
        run.communicate(timeout=60)
    finally:
        for proc in (run, events, logs):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert run.returncode == 0 and events.returncode == 0 and logs.returncode == 0, ev_err
    followed = [json.loads(line) for line in ev_out.splitlines()]
    assert [e["seq"] for e in followed] == list(range(1, len(followed) + 1))
    assert followed[-1]["kind"] == "run_finished"
    assert sum(e["kind"] == "task_finished" for e in followed) == 7
    # Every line of every work task once: the stored ones, then the live ones.
    work = sorted(line for line in logs_out.splitlines() if ECHO.fullmatch(line))
    assert [ECHO.fullmatch(line).group(1) for line in work] == ["0", "1", "2", "3"]  # type: ignore[union-attr]
    hostile = [line for line in logs_out.splitlines() if "evil" in line]
    assert len(hostile) == 4, logs_out
    assert "\x1b" not in logs_out and "\x07" not in logs_out
    assert all(line.endswith("evil \\x1b[31mred\\x1b]0;pwned\\x07 end") for line in hostile)
    assert logs_err == ""


def test_logs_follow_started_midway_prints_each_line_once(flow: Path) -> None:
    # Two work tasks have finished (their output is stored), two still run (their lines
    # so far are events only) when the follower starts: every line once.
    run = _start_slow(flow, "--n", "4", "--pause", "3.0", "--max-workers", "2", "--hostile", "1")
    try:
        deadline = time.monotonic() + 60
        while True:
            out = asyncflow(flow.parent, "events", "ProgFlow/1", "--json").stdout
            kinds = [json.loads(line) for line in out.splitlines()]
            done = [e for e in kinds if e["kind"] == "task_finished" and e["step"] == "work"]
            if done:
                break
            assert time.monotonic() < deadline and run.poll() is None
            time.sleep(0.05)
        logs = _follower(flow, "logs", "ProgFlow/1/work", "--follow")
        time.sleep(1.0)
        assert run.poll() is None  # the follower read the store while two tasks still ran
        out, err = logs.communicate(timeout=60)
        run.communicate(timeout=60)
    finally:
        for proc in (run, logs):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert logs.returncode == 0, err
    lines = out.splitlines()
    assert sorted(m.group(1) for m in map(ECHO.fullmatch, lines) if m) == ["0", "1", "2", "3"]
    assert sum("evil" in line for line in lines) == 4
    assert len(lines) == 8, out


def test_logs_follow_of_one_task_prints_its_live_lines_unprefixed(flow: Path) -> None:
    run = _start_slow(flow, "--n", "1", "--pause", "1.5", "--hostile", "1")
    try:
        time.sleep(0.5)  # the work task has printed its first line, and sleeps
        logs = _follower(flow, "logs", "ProgFlow/1/work/2", "--follow", "--stdout")
        out, err = logs.communicate(timeout=60)
        run.communicate(timeout=60)
    finally:
        for proc in (run, logs):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert logs.returncode == 0, err
    assert out == "evil \\x1b[31mred\\x1b]0;pwned\\x07 end\nwork 0\n"


def test_events_escape_hostile_text_from_the_store(flow: Path) -> None:
    assert run_flow(flow, "--quiet", "--n", "1", "--hostile", "1").returncode == 0
    human = asyncflow(flow.parent, "events", "ProgFlow/1")
    assert human.returncode == 0
    assert "\x1b" not in human.stdout and "\x07" not in human.stdout
    assert "stdout: evil \\x1b[31mred\\x1b]0;pwned\\x07 end" in human.stdout
    as_json = asyncflow(flow.parent, "events", "ProgFlow/1", "--json")
    assert "\x1b" not in as_json.stdout and "\\u001b[31m" in as_json.stdout


def test_ctrl_c_ends_a_follow_quietly_and_the_run_goes_on(flow: Path) -> None:
    run = _start_slow(flow, "--n", "2", "--pause", "8.0")  # still running when checked, under load
    try:
        follower = _follower(flow, "events", "ProgFlow/1", "--follow")
        assert follower.stdout is not None
        assert "run_started" in follower.stdout.readline()  # it follows
        follower.send_signal(signal.SIGINT)
        _, err = follower.communicate(timeout=30)
        assert follower.returncode == 130 and err == ""  # no traceback
        assert run.poll() is None
        run.communicate(timeout=60)
    finally:
        for proc in (run, follower):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert run.returncode == 0


# `python -m asyncflow ARGS` from its first statement on, "ready" on stdout just before: a
# SIGINT while Python itself starts and imports the package ends as Python ends any program
# then, before asyncflow's code can do anything.
# A SIGINT that lands before asyncflow's code has started (in this driver after "ready", or
# at line 0 of asyncflow/__main__.py, where Python checks for pending signals as the module
# starts, before its first statement) is Python's and not ours: it counts as the 130 that
# asyncflow would have given. One raised anywhere inside asyncflow's code still fails.
READY_DRIVER = (
    "import sys, asyncflow.__main__ as m\n"
    "code = compile(open(m.__file__).read(), m.__file__, 'exec')\n"
    "sys.argv = ['asyncflow', *sys.argv[1:]]\n"
    "try:\n"
    "    print('ready', flush=True)\n"
    "    exec(code, {'__name__': '__main__', '__package__': 'asyncflow'})\n"
    "except KeyboardInterrupt as e:\n"
    "    tb, lines = e.__traceback__, []\n"
    "    while tb is not None:\n"
    "        lines.append(tb.tb_lineno)\n"
    "        tb = tb.tb_next\n"
    "    if lines[1:] not in ([], [0]):\n"
    "        raise\n"
    "    sys.exit(130)\n"
)


@pytest.mark.parametrize("command", ["events", "logs"])
def test_ctrl_c_at_any_moment_of_a_follow_exits_130_with_no_traceback(
    flow: Path, command: str
) -> None:
    # From parsing the arguments, through opening the store and reading what is stored,
    # to deep inside the follow: whenever SIGINT lands, exit 130 and print nothing.
    spec = "ProgFlow/1" if command == "events" else "ProgFlow/1/work"
    run = _start_slow(flow, "--n", "2", "--pause", "30.0")
    try:
        for delay in (0.0, 0.005, 0.02, 0.05, 0.1, 0.2, 0.4, 0.8):
            follower = subprocess.Popen(
                [sys.executable, "-c", READY_DRIVER, command, spec, "--follow", "--store", "s.db"],
                cwd=flow.parent,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=_env(),
            )
            assert follower.stdout is not None
            assert follower.stdout.readline() == "ready\n"
            time.sleep(delay)
            follower.send_signal(signal.SIGINT)
            _, err = follower.communicate(timeout=30)
            assert (follower.returncode, err) == (130, ""), f"SIGINT after {delay}s"
        assert run.poll() is None  # the run goes on
    finally:
        run.kill()
        run.communicate()


SPLIT = """
import time
from asyncflow import FlowSpec, step

class SplitFlow(FlowSpec):
    @step
    def start(self):
        self.xs = [1, 2, 3]
        self.next(self.left, self.right)

    @step
    def left(self):
        time.sleep(1.0)
        self.next(self.join)

    @step
    def right(self):
        self.next(self.each, foreach="xs")

    @step
    def each(self):
        self.next(self.inner)

    @step
    def inner(self):
        self.next(self.ijoin)

    @step
    def ijoin(self, inputs):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    SplitFlow.main()
"""


def test_a_step_is_reported_once_none_of_its_tasks_can_start_not_at_the_run_end(
    tmp_path: Path,
) -> None:
    # The branch through a foreach (right, each, inner, ijoin) finishes while left still
    # sleeps: its lines come before left's, each step once, with its count.
    path = tmp_path / "split.py"
    path.write_text(textwrap.dedent(SPLIT))
    out = run_flow(path)
    assert out.returncode == 0, out.stderr
    steps = [line.split(" in ")[0] for line in out.stdout.splitlines() if line.startswith("step")]
    assert steps == [
        "step start: 1/1 done",
        "step right: 1/1 done",
        "step each: 3/3 done",
        "step inner: 3/3 done",
        "step ijoin: 1/1 done",
        "step left: 1/1 done",
        "step join: 1/1 done",
        "step end: 1/1 done",
    ]
