"""After a run the store is one file, within 5% of the data it holds (issue 9, finding 10).

A run ends with a truncating checkpoint, and the last connection of a process to close
removes the ``-wal`` and ``-shm`` files (at exit too, see ``Store.close_all``). While
another connection has the file open, a zero-length ``-wal`` and the ``-shm`` stay until it
closes. Every test runs real flows on real files; the 100 MiB run takes about a second.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

import asyncflow
from asyncflow import Flow
from asyncflow._store._db import PAGE_SIZE
from tests.flows import disk
from tests.flows.disk import BulkFlow

FLOW_FILE = disk.__file__
# An empty store: one page per table and index, the schema, the auto-vacuum pointer map.
EMPTY_PAGES = 20  # since schema 5: the events table (4), the cards table (5)
MIB = 1 << 20


def beside(store: str) -> list[str]:
    """The store's companion files that exist (-wal, -shm)."""
    return [s for s in ("-wal", "-shm") if os.path.exists(store + s)]


def stored_bytes(store: str) -> int:
    return asyncflow.stats(store).stored_bytes


def run_child(store: str, flow: str, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, FLOW_FILE, flow, "run", "--quiet", "--store", store, *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr


def test_a_trivial_run_leaves_one_small_file(store: str) -> None:
    run_child(store, "TinyFlow")
    assert beside(store) == []
    assert os.path.getsize(store) <= EMPTY_PAGES * PAGE_SIZE
    # Reading it with the client leaves it as one file too.
    with Flow("TinyFlow", store) as flow:
        assert flow.latest_run is not None and flow.latest_run["start"].data.x == 1
    assert beside(store) == []


def test_a_100_mib_run_leaves_one_file_within_5_percent_of_its_data(store: str) -> None:
    start = time.perf_counter()
    run_child(store, "BulkFlow", "--mib", "100")
    took = time.perf_counter() - start
    assert beside(store) == []
    size, data = os.path.getsize(store), stored_bytes(store)
    assert data >= 100 * MIB
    assert size <= data * 1.05 + EMPTY_PAGES * PAGE_SIZE, (size, data)
    # A second run of other data: still one file, still within 5%.
    run_child(store, "BulkFlow", "--mib", "20", "--seed", "1")
    size, data = os.path.getsize(store), stored_bytes(store)
    assert beside(store) == [] and size <= data * 1.05 + EMPTY_PAGES * PAGE_SIZE
    assert took < 60


@pytest.mark.anyio
async def test_the_wal_is_emptied_when_a_run_ends_while_another_connection_is_open(
    store: str,
) -> None:
    run_child(store, "TinyFlow")
    # Another connection (another process would do the same) keeps the files beside the
    # store, but the run's end truncates the WAL to zero bytes.
    with closing(sqlite3.connect(store)) as other:
        other.execute("SELECT count(*) FROM runs").fetchall()
        run = await BulkFlow(store=store, echo=False).run(mib=20)
        assert run.successful
        assert os.path.getsize(store + "-wal") == 0
        assert os.path.getsize(store) <= stored_bytes(store) * 1.05 + EMPTY_PAGES * PAGE_SIZE
    # This process's store closes after a quiet spell (2 s); the last connection to close
    # removes both files.
    deadline = time.monotonic() + 30
    while beside(store) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert beside(store) == []


@pytest.mark.anyio
async def test_a_reader_in_a_transaction_delays_the_truncation_not_the_run(store: str) -> None:
    run_child(store, "TinyFlow")
    with closing(sqlite3.connect(store, isolation_level=None)) as reader:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM runs").fetchall()  # holds a snapshot
        started = time.perf_counter()
        run = await BulkFlow(store=store, echo=False).run(mib=5)
        assert run.successful and time.perf_counter() - started < 30
        assert os.path.getsize(store + "-wal") > 0  # the reader needed the frames
        reader.execute("COMMIT")
    # Left for the next checkpoint: here the close of the process's last connection.
    deadline = time.monotonic() + 30
    while beside(store) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert beside(store) == []
    assert Flow("BulkFlow", store).latest_run.successful  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_a_reader_in_a_transaction_never_makes_a_run_wait_at_its_end(store: str) -> None:
    # A truncating checkpoint that waits for a reader holds the write lock meanwhile: the run
    # and every other writer would wait on the reader. It must give up at once instead.
    await disk.TinyFlow(store=store, echo=False).run()
    times = []
    with closing(sqlite3.connect(store, isolation_level=None)) as reader:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM runs").fetchall()  # holds a snapshot
        for _ in range(5):
            started = time.perf_counter()
            assert (await disk.TinyFlow(store=store, echo=False).run()).successful
            times.append(time.perf_counter() - started)
        reader.execute("COMMIT")
    # A trivial run takes 10-30 ms here; one that waited for the reader took over 600 ms.
    assert sorted(times)[2] < 0.3, times


def test_the_store_shrinks_back_after_gc(store: str, tmp_path: Path) -> None:
    run_child(store, "BulkFlow", "--mib", "20")
    run_child(store, "TinyFlow")
    report = asyncflow.gc(store, flow="BulkFlow", older_than=0)
    assert report.deleted == ("BulkFlow/1",)
    assert beside(store) == []
    assert report.size_after == os.path.getsize(store) <= (EMPTY_PAGES + 2) * PAGE_SIZE


def test_a_run_cancelled_by_sigint_mid_step_leaves_one_file(store: str, tmp_path: Path) -> None:
    # The command line exits at once (os._exit) while a plain step still sleeps in a thread;
    # it closes its stores first.
    from tests.flows import longstep

    marker = tmp_path / "marker"
    proc = subprocess.Popen(
        [sys.executable, longstep.__file__, "run", "--quiet", "--store", store, "--marker",
         str(marker), "--seconds", "30", "--mode", "sleep"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err.decode()
    assert beside(store) == []
    assert Flow("LongStepFlow", store)["1"].status == "cancelled"


def test_the_writer_bounds_the_wal_between_checkpoints(store: str) -> None:
    # README, "The store file": SQLite checkpoints every 1,000 pages (65.5 MB with 64 KiB
    # pages), and each restart of the WAL cuts it back to 64 MiB (journal_size_limit).
    from asyncflow._store._db import open_writer

    conn = open_writer(store)
    try:
        assert conn.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE == 64 * 1024
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
        assert conn.execute("PRAGMA journal_size_limit").fetchone()[0] == 64 * MIB
    finally:
        conn.close()
    assert beside(store) == []
