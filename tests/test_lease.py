"""A live run is never deleted by gc, however long its steps take (issue 9, finding 6).

The lease window is shrunk to a second or two with ``$ASYNCFLOW_TEST_LEASE_SECONDS`` (the
run's process and gc's process both read it), so that a step "longer than the lease" takes
seconds, not minutes. Every test uses real processes: the run in one child, gc in another.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest

import asyncflow
from asyncflow import Flow
from asyncflow._store._lease import (
    LEASE_ENV,
    crashed_reason,
    host_name,
    lease_held,
    process_started,
)
from tests._storefixture import T, write_run
from tests.flows import longstep

FLOW_FILE = longstep.__file__
WINDOW = 1.5  # seconds: the lease window in these tests (heartbeat every 0.125 s)


def query(store: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(store, timeout=30)) as conn:
        return conn.execute(sql, params).fetchall()


def env() -> dict[str, str]:
    return {**os.environ, LEASE_ENV: str(WINDOW)}


@contextmanager
def long_run(
    tmp_path: Path, store: str, mode: str, seconds: int
) -> Iterator[subprocess.Popen[bytes]]:
    """A child process running LongStepFlow, inside its long step when this yields."""
    marker = tmp_path / "marker"
    proc = subprocess.Popen(
        [sys.executable, FLOW_FILE, "run", "--quiet", "--store", store, "--marker",
         str(marker), "--seconds", str(seconds), "--mode", mode],
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert marker.exists(), proc.communicate()[1].decode() if proc.poll() is not None else ""
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def gc_in_another_process(store: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "asyncflow", "gc", "--older-than", "0", "--store", store],
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def lease_age(store: str) -> float:
    [(beat,)] = query(store, "SELECT heartbeat_at FROM runs")
    return time.time() - float(beat)


def test_gc_never_deletes_a_live_run_whose_step_holds_the_gil_past_the_lease(
    tmp_path: Path, store: str
) -> None:
    # The step keeps the GIL for 8 s: the writer thread cannot renew the lease meanwhile,
    # so it lapses (this was finding 6: gc deleted such a run as dead, and the run's
    # later rows were written for a run that no longer existed). 8 s, not less: gc must
    # still find the run going after the 3 s wait and a gc process started on a loaded
    # machine (at 4 s, the run had sometimes finished, and gc rightly deleted it).
    with long_run(tmp_path, store, "gil", 8) as proc:
        time.sleep(2 * WINDOW)
        assert lease_age(store) > WINDOW  # the lease has lapsed...
        out = gc_in_another_process(store)  # ...yet the owner is alive on this host
        assert "Deleted 0 runs" in out and "LongStepFlow/1 (live: running in process" in out
        assert Flow("LongStepFlow", store)["1"].status == "running"
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
    run = Flow("LongStepFlow", store)["1"]
    assert run.successful and run.data.done is True and run.data.slept == 8
    assert query(store, "SELECT count(*) FROM tasks WHERE run_id = 1") == [(2,)]


def test_a_step_that_lets_threads_run_keeps_the_lease_renewed(tmp_path: Path, store: str) -> None:
    # A long step that releases the GIL (sleeping, waiting on I/O, numpy) does not hold up
    # the writer thread: the lease stays fresh for the whole step, and gc keeps the run.
    with long_run(tmp_path, store, "sleep", 4) as proc:
        ages = []
        for _ in range(10):
            time.sleep(WINDOW / 5)
            ages.append(lease_age(store))
        assert max(ages) < WINDOW, ages
        assert "Deleted 0 runs" in gc_in_another_process(store)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
    assert Flow("LongStepFlow", store)["1"].successful


def test_gc_keeps_a_run_of_another_host_while_its_lease_is_unexpired(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LEASE_ENV, str(WINDOW))
    write_run(store, "F", [T("start")], status="running")
    fresh = time.time()
    with closing(sqlite3.connect(store)) as conn, conn:
        conn.execute(
            "UPDATE runs SET owner_pid = 1, owner_host = 'elsewhere', heartbeat_at = ?", (fresh,)
        )
    report = asyncflow.gc(store, older_than=0)
    assert report.deleted == () and report.skipped == ("F/1",)
    assert report.skipped_why["F/1"].startswith("live: running in process 1 on elsewhere")
    with closing(sqlite3.connect(store)) as conn, conn:
        conn.execute("UPDATE runs SET heartbeat_at = ?", (fresh - 2 * WINDOW,))
    assert asyncflow.gc(store, older_than=0).deleted == ("F/1",)


def test_gc_keeps_a_dead_owners_run_until_its_lease_expires(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Readers call the run crashed at once (its pid is gone, so it may be resumed), but gc
    # waits for the lease: a live lease is never deleted, whatever the pid looks like.
    monkeypatch.setenv(LEASE_ENV, str(WINDOW))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    write_run(store, "F", [T("start")], status="running")
    with closing(sqlite3.connect(store)) as conn, conn:
        conn.execute(
            "UPDATE runs SET owner_pid = ?, owner_host = ?, heartbeat_at = ?",
            (gone.pid, host_name(), time.time()),
        )
    assert Flow("F", store)["1"].status == "crashed"
    assert asyncflow.gc(store, older_than=0).skipped == ("F/1",)
    time.sleep(WINDOW + 0.5)
    assert asyncflow.gc(store, older_than=0).deleted == ("F/1",)


def test_the_lease_rules_for_an_alive_owner_and_a_reused_pid() -> None:
    here = host_name()
    now = time.time() + 3600  # an hour from now: every lease below has lapsed long ago
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.2)
        # An alive owner whose last heartbeat is an hour old (a step holding the GIL) is
        # not crashed, and gc keeps its run...
        mine = process_started(os.getpid()) or time.time() - 10
        beat = mine + 0.5
        assert crashed_reason("running", os.getpid(), here, beat, now=now) is None
        assert lease_held("running", os.getpid(), here, beat, now=now)
        # ...but a pid whose process started after the last heartbeat is another process.
        if os.path.isdir("/proc/self"):
            before_child = time.time() - 30
            reason = crashed_reason("running", child.pid, here, before_child, now=now)
            assert reason is not None and "now belongs to another process" in reason
            assert lease_held("running", child.pid, here, before_child, now=now) is None
    finally:
        child.kill()
        child.wait()
