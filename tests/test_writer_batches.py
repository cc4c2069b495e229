"""A failed write batch loses none of its good operations (issue 9, guard with no test).

The writer commits everything queued in one transaction; when that fails, it retries the
operations one by one so that only the bad one fails (``Writer._commit``). Here a real
SQLite write lock held by another connection makes the writer queue one batch holding good
task records of one run and, in their middle, a bad record of another run (its task id is
already taken), and the test checks every good record is committed, in full.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from concurrent.futures import Future
from contextlib import closing

import pytest

from asyncflow import StoreError
from asyncflow._codecs import encode
from asyncflow._store._write_ops import CreateRun, TaskRecord
from asyncflow._store._writer import BACKLOG_HIGH, Writer


def record(run_id: int, task_id: int, value: object) -> TaskRecord:
    enc = encode(value)
    now = time.time()
    return TaskRecord(
        run_id=run_id,
        task_id=task_id,
        step=f"s{task_id}",
        path="",
        status="succeeded",
        started_at=now,
        finished_at=now,
        refs={"v": enc.sha},
        blobs=[enc],
    )


def test_isolating_the_bad_op_of_a_failed_batch_loses_none_of_the_others(store: str) -> None:
    writer = Writer(store, lambda shas: None)
    try:
        runs = [CreateRun("F", "{}", time.time(), (), {}) for _ in range(2)]
        for create in runs:
            writer.submit(create)
        bad_run, good_run = (create.future.result(timeout=30) for create in runs)
        taken = record(bad_run, 1, "first")
        writer.submit(taken)
        writer.flush().result(timeout=30)
        with closing(sqlite3.connect(store, isolation_level=None, timeout=30)) as lock:
            lock.execute("BEGIN IMMEDIATE")  # the writer waits: what follows queues up
            head = record(good_run, 1, "head")
            writer.submit(head)  # taken alone by the waiting writer
            time.sleep(0.3)
            batch = [
                record(good_run, 2, ["a", 1]),
                record(bad_run, 1, "duplicate task id"),  # fails: (run, task) exists
                record(good_run, 3, {"b": 2.5}),
                record(good_run, 4, "the last op of the batch"),
            ]
            for op in batch:
                op.future = Future()
                writer.submit(op)
            time.sleep(0.3)
            lock.execute("COMMIT")
        for op in batch:
            if op.task_id == 1:
                with pytest.raises(StoreError, match="UNIQUE constraint failed"):
                    assert op.future is not None
                    op.future.result(timeout=30)
            else:
                assert op.future is not None and op.future.result(timeout=10) == 0, op
        writer.flush().result(timeout=30)
        assert writer.run_error(bad_run) is not None and writer.run_error(good_run) is None
    finally:
        writer.close()
    with closing(sqlite3.connect(store)) as conn:
        tasks = conn.execute("SELECT run_id, id FROM tasks ORDER BY run_id, id").fetchall()
        assert tasks == [(bad_run, 1)] + [(good_run, i) for i in (1, 2, 3, 4)]
        # Each good record's artifact and value are there, whole.
        rows = conn.execute(
            "SELECT a.task_id, b.data FROM artifacts AS a JOIN blobs AS b ON b.sha = a.sha "
            "WHERE a.run_id = ? ORDER BY a.task_id",
            (good_run,),
        ).fetchall()
        assert [task for task, _ in rows] == [1, 2, 3, 4]
        expected = [encode(v).payload for v in ("head", ["a", 1], {"b": 2.5},
                                                "the last op of the batch")]  # fmt: skip
        assert [bytes(data) for _, data in rows] == [bytes(p) for p in expected]


def test_wait_backlog_holds_a_producer_while_the_writer_is_far_behind(store: str) -> None:
    # Threads running plain tasks call wait_backlog before each next task: more than
    # BACKLOG_HIGH queued records make them wait until the writer is down to MAX_BATCH.
    writer = Writer(store, lambda shas: None)
    try:
        create = CreateRun("F", "{}", time.time(), (), {})
        writer.submit(create)
        run = create.future.result(timeout=30)
        writer.wait_backlog(lambda: False)  # nothing queued: returns at once
        with closing(sqlite3.connect(store, isolation_level=None, timeout=30)) as lock:
            lock.execute("BEGIN IMMEDIATE")  # the writer waits: what follows queues up
            writer.submit(record(run, 1, 1))  # taken alone by the waiting writer
            time.sleep(0.3)
            for task in range(2, BACKLOG_HIGH + 100):
                writer.submit(record(run, task, task))
            released = threading.Event()
            stopped: list[float] = []

            def producer() -> None:
                writer.wait_backlog(lambda: False)
                stopped.append(time.monotonic())

            held = threading.Thread(target=producer)
            held.start()
            released.set()
            writer.wait_backlog(released.is_set)  # told to stop: does not wait
            time.sleep(0.5)
            assert held.is_alive() and not stopped, "did not wait for the writer"
            lock.execute("COMMIT")
            at = time.monotonic()
            held.join(timeout=30)
            assert stopped and stopped[0] >= at
        writer.flush().result(timeout=60)
    finally:
        writer.close()
    with closing(sqlite3.connect(store)) as conn:
        assert conn.execute("SELECT count(*) FROM tasks").fetchone() == (BACKLOG_HIGH + 99,)
