"""Cancelling a run: from the awaiting task, by SIGTERM or SIGINT; and resuming it after."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from asyncflow import Flow
from tests.flows import resume_flows as rf
from tests.flows.resume_flows import ran

FLOWS_FILE = Path(rf.__file__)
WORK = {f"{kind}_work:{i}" for kind in ("plain", "async") for i in range(3)}


def task_rows(store: str, run_id: str | int) -> list[dict[str, Any]]:
    conn = sqlite3.connect(store)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute(
            "SELECT t.*, (SELECT count(*) FROM artifacts AS a "
            "WHERE a.run_id = t.run_id AND a.task_id = t.id) AS nartifacts "
            "FROM tasks AS t WHERE t.run_id = ? ORDER BY t.id",
            (int(run_id),),
        ).fetchall()
    finally:
        conn.close()
    return [dict(r) for r in rows]


def run_row(store: str, run_id: str | int) -> tuple[str, str | None]:
    conn = sqlite3.connect(store)
    try:
        status, error = conn.execute(
            "SELECT status, error FROM runs WHERE id = ?", (int(run_id),)
        ).fetchone()
    finally:
        conn.close()
    return status, error


async def wait_for(log: str, keys: set[str], timeout: float = 10) -> None:
    with anyio.fail_after(timeout):
        while not keys <= set(ran(log)):
            await anyio.sleep(0.01)


@pytest.fixture
def log(tmp_path: Path) -> str:
    return str(tmp_path / "ran.log")


@pytest.mark.anyio
async def test_cancelling_run_records_the_running_tasks_then_resume_finishes(
    store: str, log: str
) -> None:
    flow = rf.CancelFlow(store=store, echo=False)
    nap = 0.8
    cancelled_at = 0.0

    async def cancel_when_working(scope: anyio.CancelScope) -> None:
        nonlocal cancelled_at
        await wait_for(log, WORK)  # three plain and three coroutine tasks are running
        cancelled_at = time.time()
        scope.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(cancel_when_working, tg.cancel_scope)
        await flow.run(log=log, nap=nap)
        pytest.fail("run() returned although it was cancelled")

    assert run_row(store, 1) == ("cancelled", "the run was cancelled")
    rows = task_rows(store, 1)
    by_status: dict[str, set[str]] = {}
    for row in rows:
        key = row["step"] + (f":{row['path']}" if row["path"] else "")
        by_status.setdefault(row["status"], set()).add(key)
    assert by_status == {
        "succeeded": {"start", "plain_split", "async_split"},
        "cancelled": WORK,
    }
    for row in rows:
        if row["status"] == "cancelled":
            assert row["nartifacts"] == 0
            assert row["started_at"] <= cancelled_at <= row["finished_at"]
        else:
            assert row["finished_at"] <= cancelled_at
    # The plain tasks go on in their threads and finish; nothing of theirs is committed.
    await wait_for(log, {f"plain_done:{i}" for i in range(3)})
    await anyio.sleep(0.2)
    assert task_rows(store, 1) == rows
    assert not any(k.startswith("async_done") for k in ran(log))  # coroutines were cancelled
    with Flow("CancelFlow", store=store) as client:
        run = client["1"]
        assert run.status == "cancelled" and run.finished
        assert {t.status for t in run["plain_work"]} == {"cancelled"}

    resumed = await flow.resume()

    assert resumed.successful and resumed.origin_run_id == "1"
    assert resumed["join"].data.ps == [0, 10, 20]
    assert resumed["join"].data.as_ == [0, 100, 200]
    again = {row["step"]: row["origin_task_id"] for row in task_rows(store, resumed.id)}
    assert again["start"] is not None and again["plain_split"] is not None
    assert again["plain_work"] is None and again["async_work"] is None


@pytest.mark.anyio
async def test_cancelled_error_reaches_the_awaiting_task(store: str, log: str) -> None:
    flow = rf.CancelFlow(store=store, echo=False)
    task = asyncio.ensure_future(flow.run(log=log, nap=0.5))
    await wait_for(log, WORK)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert run_row(store, 1)[0] == "cancelled"
    statuses = {(r["step"], r["status"]) for r in task_rows(store, 1)}
    assert ("async_work", "cancelled") in statuses
    rows = task_rows(store, 1)
    assert not any(r["step"].endswith("join") for r in rows)  # never started
    await wait_for(log, {f"plain_done:{i}" for i in range(3)})  # the threads end; no commit
    await anyio.sleep(0.1)
    assert task_rows(store, 1) == rows


# --- signals to `python flow.py run` -----------------------------------------------------


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"]
)
def test_a_signal_cancels_a_cli_run(tmp_path: Path, signum: int, code: int) -> None:
    store, log = str(tmp_path / "s.db"), str(tmp_path / "ran.log")
    env = {k: v for k, v in os.environ.items() if k != "ASYNCFLOW_STORE"}
    proc = subprocess.Popen(
        [sys.executable, str(FLOWS_FILE), "SleepyFlow", "run", "--store", store, "--log", log],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "Run SleepyFlow/1 started\n"
        deadline = time.monotonic() + 20
        while not {"plain", "coro"} <= set(ran(log)):  # both 30 s steps are running
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.02)
        sent = time.monotonic()
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=20)
        # The start line was read above; then at most start's progress line.
        assert re.fullmatch(r"(step start: 1/1 done in \S+\n)?", out), out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, err
    assert time.monotonic() - sent < 10  # it did not wait for the 30 s plain step
    assert err.count("\n") == 1 and "cancelled" in err and "Traceback" not in err
    assert "resume --origin-run-id 1" in err
    assert run_row(store, 1)[0] == "cancelled"
    statuses = {r["step"]: r["status"] for r in task_rows(store, 1)}
    assert statuses == {"start": "succeeded", "plain": "cancelled", "coro": "cancelled"}


@pytest.mark.anyio
async def test_a_plain_task_cancel_while_the_run_row_is_written_still_gives_the_run_its_end(
    tmp_path: Path,
) -> None:
    # asyncio's Task.cancel() gets through an anyio shield: a cancellation that lands while
    # the writer is committing the new run's row must not leave that row "running" (read
    # back as crashed). The writer is held on another connection's write lock, so the run
    # is surely waiting for its row when it is cancelled.
    from tests.flows.capture import PrintFlow

    store = str(tmp_path / "s.db")
    await PrintFlow(store=store, echo=False).run()  # the store exists, the writer is warm
    blocker = sqlite3.connect(store, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        task = asyncio.ensure_future(PrintFlow(store=store, echo=False).run())
        await asyncio.sleep(0.3)  # the graph is built; the row waits for the lock
        assert not task.done()
        task.cancel()
        await asyncio.sleep(0.05)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    with pytest.raises(asyncio.CancelledError):
        await task
    conn = sqlite3.connect(store)
    try:
        rows = conn.execute("SELECT id, status FROM runs ORDER BY id").fetchall()
    finally:
        conn.close()
    assert rows == [(1, "succeeded"), (2, "cancelled")]
