"""Crash safety and many processes on one store.

A process killed with SIGKILL leaves an intact store that keeps every committed task, and
its run reads back as ``crashed`` (client and command line), judged from the run's lease;
a live run in another process does not. Reads and writes wait out other processes' locks.
Short versions of the two stress scripts in ``benchmarks/`` run here too.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import asyncflow._store._db as db
from asyncflow import ArtifactNotFoundError, Flow, FlowSpec
from asyncflow._cli import main as cli_main
from asyncflow._client._handle import aconnect, adrive, drive
from asyncflow._store import _queries as q
from asyncflow._store._lease import (
    STALE_SECONDS,
    crashed_reason,
    host_name,
    owner_alive,
    process_started,
)
from asyncflow._store._write_ops import CreateRun, FinishRun
from asyncflow._store._writer import Writer
from tests._storefixture import T, execute, write_run
from tests.flows.crash import WIDTH, CrashFlow, work_value

ROOT = Path(__file__).resolve().parent.parent
FLOW_FILE = ROOT / "tests" / "flows" / "crash.py"
# Committed before the hang step signals: start, the foreach tasks, the join.
COMMITTED = 1 + WIDTH + 1


def query(store: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(store, timeout=30)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def wait_until(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def committed_tasks(store: str) -> int:
    try:
        return int(query(store, "SELECT count(*) FROM tasks")[0][0])
    except sqlite3.Error:
        return 0


@contextmanager
def hanging_run(tmp_path: Path, store: str) -> Iterator[subprocess.Popen[bytes]]:
    """A child process running CrashFlow, stopped in its hang step with the rest committed."""
    marker = tmp_path / "marker"
    proc = subprocess.Popen(
        [sys.executable, str(FLOW_FILE), "run", "--quiet", "--store", store, "--marker", marker],
        env={**os.environ, "CRASHFLOW_HANG": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(lambda: marker.exists() or proc.poll() is not None, "the hang step")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        wait_until(lambda: committed_tasks(store) >= COMMITTED, "the commits")
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code = cli_main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def status_column(out: str, run_id: str) -> str:
    for line in out.splitlines()[1:]:
        cells = line.split()
        if cells[1] == run_id:
            return cells[2]
    raise AssertionError(f"run {run_id} not listed:\n{out}")


# --- a run killed mid-way ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_killed_run_keeps_its_tasks_and_reads_back_as_crashed(
    tmp_path: Path, store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with hanging_run(tmp_path, store) as proc:
        pid = proc.pid
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    assert query(store, "PRAGMA integrity_check") == [("ok",)]
    with Flow("CrashFlow", store) as flow:
        run = flow.latest_run
        assert run is not None
        assert (run.status, run.finished, run.successful) == ("crashed", True, False)
        assert run.finished_at is not None and run.finished_at >= run.created_at
        assert run.error is not None and f"process {pid} on {host_name()}" in run.error
        # Every committed task is there, with artifacts that decode.
        assert [s.name for s in run] == ["start", "work", "join"]
        assert [t.data.value for t in run["work"]] == [i * 10 for i in range(WIDTH)]
        for task in run["work"]:
            assert np.array_equal(task.data.arr, work_value(task.index or 0))
        assert run["join"].task.data.total == sum(i * 10 for i in range(WIDTH))
        with pytest.raises(ArtifactNotFoundError, match="run status: crashed"):
            run.end_task  # noqa: B018
        # The stored row keeps saying running: crashed is judged when the run is read.
        assert query(store, "SELECT status FROM runs") == [("running",)]
    async with Flow.aopen("CrashFlow", store) as aflow:
        arun = await aflow.alatest_run()
        assert arun is not None and arun.status == "crashed"

    assert status_column(cli(capsys, "runs", "--store", store), run.id) == "crashed"
    shown = cli(capsys, "show", f"CrashFlow/{run.id}", "--store", store)
    assert shown.splitlines()[0] == f"Run CrashFlow/{run.id}  crashed"
    assert "error     the run crashed: process" in shown

    # A crashed run can be resumed: its finished tasks are cloned, the rest runs.
    if not hasattr(FlowSpec, "resume"):
        pytest.skip("FlowSpec.resume does not exist yet")
    resumed = await CrashFlow(store=store, echo=False).resume(run.id)
    assert resumed.status == "succeeded" and resumed.origin_run_id == run.id
    assert await resumed.adata("total") == sum(i * 10 for i in range(WIDTH))


def test_a_live_run_in_another_process_is_not_crashed(
    tmp_path: Path, store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with hanging_run(tmp_path, store) as proc:
        with Flow("CrashFlow", store) as flow:
            run = flow.latest_run
            assert run is not None
            assert (run.status, run.finished, run.finished_at, run.error) == (
                "running",
                False,
                None,
                None,
            )
        [(pid, host, beat)] = query(store, "SELECT owner_pid, owner_host, heartbeat_at FROM runs")
        assert (pid, host) == (proc.pid, socket.gethostname())
        assert abs(time.time() - beat) < 30
        assert status_column(cli(capsys, "runs", "--store", store), run.id) == "running"
    # Killed on the way out: now it is crashed.
    after = Flow("CrashFlow", store).latest_run
    assert after is not None and after.status == "crashed"


# --- the lease ---------------------------------------------------------------------------------


def test_the_writer_keeps_the_lease_of_its_runs_fresh_and_ends_it(store: str) -> None:
    writer = Writer(store, lambda shas: None, idle_seconds=0.05, heartbeat_seconds=0.05)
    try:
        create = CreateRun("LeaseFlow", "{}", time.time(), (), {})
        writer.submit(create)
        run_id = create.future.result(timeout=10)
        [(pid, host, first)] = query(
            store, "SELECT owner_pid, owner_host, heartbeat_at FROM runs WHERE id = ?", (run_id,)
        )
        assert (pid, host) == (os.getpid(), socket.gethostname())
        wait_until(
            lambda: query(store, "SELECT heartbeat_at FROM runs")[0][0] > first + 0.1,
            "a refreshed heartbeat",
            timeout=10,
        )
        finish = FinishRun(run_id, "succeeded", time.time())
        writer.submit(finish)
        finish.future.result(timeout=10)
        time.sleep(0.3)  # several heartbeat periods: the finished run is left alone
        assert query(store, "SELECT heartbeat_at, finished_at FROM runs") == [
            (finish.finished_at, finish.finished_at)
        ]
    finally:
        writer.close()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_lease_rules() -> None:
    now = time.time()
    me, here = os.getpid(), host_name()
    fresh, stale = now - 1, now - STALE_SECONDS - 1
    # Finished runs and runs without a lease (written before schema 2) are never crashed.
    assert crashed_reason("succeeded", 1, here, stale, now=now) is None
    assert crashed_reason("running", None, None, None, now=now) is None
    # This host: the owner's pid decides; a stale heartbeat on a live pid means pid reuse.
    gone = dead_pid()
    reason = crashed_reason("running", gone, here, fresh, now=now)
    assert reason == f"process {gone} on {here} ended without finishing the run"
    assert crashed_reason("running", me, here, fresh, now=now) is None
    # A stale heartbeat of a live owner (a step holding the GIL) is no crash: see
    # tests/test_lease.py, which also covers a pid reused by a later process.
    assert (
        crashed_reason("running", me, here, (process_started(me) or now) + 0.5, now=now + 999)
        is None
    )
    # Another host: only the heartbeat's age tells.
    assert crashed_reason("running", gone, "elsewhere", fresh, now=now) is None
    assert "stopped refreshing" in (crashed_reason("running", 1, "elsewhere", stale, now=now) or "")


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="zombies are read from /proc")
def test_a_zombie_owner_is_dead() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        wait_until(lambda: not owner_alive(proc.pid), "the child to become a zombie", 30)
        os.kill(proc.pid, 0)  # not reaped yet: the pid still exists
    finally:
        proc.wait()


def test_the_client_judges_a_run_of_another_host_by_its_heartbeat(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks = [T("start", artifacts={"x": 1})]
    lost = write_run(store, "HostFlow", tasks, status="running", finished_at=None)
    live = write_run(store, "HostFlow", tasks, status="running", finished_at=None)
    legacy = write_run(store, "HostFlow", tasks, status="running", finished_at=None)
    update = (
        "UPDATE runs SET owner_pid = 7, owner_host = 'elsewhere', heartbeat_at = ? WHERE id = ?"
    )
    execute(store, update, (time.time() - STALE_SECONDS - 5, lost))
    execute(store, update, (time.time(), live))
    with Flow("HostFlow", store) as flow:
        assert flow[lost].status == "crashed" and flow[lost].finished
        assert flow[lost].error is not None and "process 7 on elsewhere" in flow[lost].error
        assert flow[live].status == "running" and not flow[live].finished
        assert flow[legacy].status == "running"  # no lease: no evidence either way
    out = cli(capsys, "runs", "HostFlow", "--store", store)
    assert [status_column(out, str(i)) for i in (lost, live, legacy)] == [
        "crashed",
        "running",
        "running",
    ]


# --- waiting out other processes' locks --------------------------------------------------------


@contextmanager
def locked_for(store: str, seconds: float) -> Iterator[None]:
    """Hold the store exclusively (no reader, no writer) for ``seconds``, in a thread.

    Possible only while no other connection has the file open.
    """
    conn = sqlite3.connect(store, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA locking_mode = EXCLUSIVE")
    conn.execute("BEGIN EXCLUSIVE")

    def release() -> None:
        time.sleep(seconds)
        conn.execute("COMMIT")
        conn.close()

    thread = threading.Thread(target=release)
    thread.start()
    try:
        yield
    finally:
        thread.join()


@pytest.mark.anyio
async def test_opening_and_writing_wait_out_a_lock_longer_than_busy_timeout(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = write_run(store, "CrashFlow", [T("start")])
    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", 20)  # SQLite's own wait ends long before
    with locked_for(store, 0.5), Flow("CrashFlow", store) as flow:
        assert flow[first].status == "succeeded"
    with locked_for(store, 0.5):
        async with Flow.aopen("CrashFlow", store) as aflow:
            assert (await aflow.aget(first)).status == "succeeded"
    with locked_for(store, 0.5):  # the writer: opening the file, then its commits
        run = await CrashFlow(store=store, echo=False).run()
    assert run.status == "succeeded"


class BusyTwice:
    """Stands in for a connection: the first two statements after BEGIN find it locked."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.in_transaction = False
        self.busy = 2

    def _check(self, sql: str) -> None:
        if sql != "BEGIN" and sql != "ROLLBACK" and self.busy:
            self.busy -= 1
            raise sqlite3.OperationalError("database is locked")

    def execute(self, sql: str, params: Any = ()) -> Any:
        self._check(sql)
        return self.conn.execute(sql, params)

    async def execute_fetchall(self, sql: str, params: Any = ()) -> Any:
        self._check(sql)
        return await self.conn.execute_fetchall(sql, params)


@pytest.mark.anyio
async def test_a_read_that_finds_the_file_locked_is_retried(store: str) -> None:
    write_run(store, "CrashFlow", [T("start")])
    conn = db.open_reader(store)
    try:
        fake = BusyTwice(conn)
        assert drive(fake, q.flow_names(), store) == ["CrashFlow"]  # type: ignore[arg-type]
        assert fake.busy == 0
    finally:
        conn.close()
    async with aconnect(store) as aconn:
        afake = BusyTwice(aconn)
        assert await adrive(afake, q.flow_names(), store) == ["CrashFlow"]  # type: ignore[arg-type]
        assert afake.busy == 0


# --- the stress scripts, short -----------------------------------------------------------------


def run_script(name: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / name), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def figure(out: str, name: str) -> str:
    for line in out.splitlines():
        if line.startswith(name):
            return line[len(name) :].split()[0]
    raise AssertionError(f"no {name!r} in:\n{out}")


def test_stress_kill_short() -> None:
    out = run_script("stress_kill.py", "--trials", "5", "--tasks", "100")
    assert figure(out, "trials") == "5"
    for name in ("corruptions", "lost commits", "unrecognised"):
        assert figure(out, name) == "0", out
    if hasattr(FlowSpec, "resume"):
        assert figure(out, "failed resumes") == "0", out


def test_stress_processes_short() -> None:
    out = run_script("stress_processes.py", "--processes", "2", "--runs", "3", "--tasks", "50")
    assert figure(out, "runs") == "6"
    assert (figure(out, "errors"), figure(out, "lost commits")) == ("0", "0"), out
