"""The one store file: complete on its own, content-addressed, chunked, and refusing strangers."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest

import asyncflow
from asyncflow import Flow, Run, StepFailed, StoreError, StoreFormatError
from asyncflow._store._store import Store
from tests.flows.artifacts import difference
from tests.flows.concurrency import ThreadForeachSleep
from tests.flows.storefile import (
    BIG_LEN,
    SHARED_PAYLOAD,
    BigFlow,
    FailingFlow,
    RichFlow,
    SharedA,
    SharedB,
    big_array,
)

MIB = 1 << 20  # the chunk size the store documents


def query(store: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(store)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def blob_count(store: str) -> int:
    return int(query(store, "SELECT count(*) FROM blobs")[0][0])


def snapshot(run: Run) -> dict[str, Any]:
    """Everything the client can read about a run, artifact values included."""
    tasks = {}
    for step in run:
        for task in step:
            tasks[task.pathspec] = {
                "status": task.status,
                "index": task.index,
                "stdout": task.stdout,
                "stderr": task.stderr,
                "exception": task.exception,
                "artifacts": {name: task.data[name] for name in task.data},
                "shas": {art.name: art.sha for art in task},
            }
    return {"status": run.status, "parameters": run.parameters, "tasks": tasks}


def assert_same_snapshot(expected: dict[str, Any], actual: dict[str, Any]) -> None:
    assert actual["status"] == expected["status"]
    assert actual["parameters"] == expected["parameters"]
    assert list(actual["tasks"]) == list(expected["tasks"])
    for pathspec, task in expected["tasks"].items():
        copy = actual["tasks"][pathspec]
        for key in ("status", "index", "stdout", "stderr", "exception", "shas"):
            assert copy[key] == task[key], (pathspec, key)
        assert list(copy["artifacts"]) == list(task["artifacts"]), pathspec
        for name, value in task["artifacts"].items():
            assert difference(value, copy["artifacts"][name], name) is None, (pathspec, name)


# --- one file holds everything -----------------------------------------------------------------


@pytest.mark.anyio
async def test_the_db_file_alone_holds_every_run(store: str, tmp_path: Path) -> None:
    rich = await RichFlow(store=store, echo=False).run(seed=5)
    with pytest.raises(StepFailed) as info:
        await FailingFlow(store=store, echo=False).run()
    failed = info.value.run

    # right after run() returns, copy the .db file only (no -wal, no -shm)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    copy = str(elsewhere / "copy.db")
    shutil.copyfile(store, copy)
    assert os.listdir(elsewhere) == ["copy.db"]

    for original, name in ((rich, "RichFlow"), (failed, "FailingFlow")):
        with Flow(name, store=copy) as flow:
            assert_same_snapshot(snapshot(original), snapshot(flow[original.id]))
    with Flow("RichFlow", store=copy) as flow:
        run = flow[rich.id]
        assert run.data.done is True
        assert run["join"].data.tags == ["aaa", "bbb"]
        assert run["join"].data.big_sum == float(big_array().sum())
        big = run["start"].data.big
        assert big.dtype == np.float64 and big.shape == (BIG_LEN,)
        assert np.array_equal(big, big_array())
        assert run["start"].task.stdout == "rich start\n"
        assert [t.stdout for t in run["body"]] == ["body a\n", "body b\n"]
    with Flow("FailingFlow", store=copy) as flow:
        assert flow[failed.id]["fail"].task.exception == "RuntimeError: planned failure"


@pytest.mark.anyio
async def test_the_db_file_is_complete_while_another_run_is_still_going(
    store: str, tmp_path: Path
) -> None:
    copy = str(tmp_path / "copy.db")
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: ThreadForeachSleep(store=store, echo=False).run(n=2, pause=0.4))
        await anyio.sleep(0.05)  # the slow run has started writing
        rich = await RichFlow(store=store, echo=False).run()
        shutil.copyfile(store, copy)  # while the slow run is still going
        with Flow("ThreadForeachSleep", store=store) as flow:
            slow = flow.latest_run
            assert slow is not None and slow.status == "running"  # the premise
    with Flow("RichFlow", store=copy) as flow:
        assert_same_snapshot(snapshot(rich), snapshot(flow[rich.id]))


# --- content addressing ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_value_is_stored_once_across_runs_and_flows(store: str) -> None:
    first = await SharedA(store=store, echo=False).run()
    after_first = blob_count(store)
    # payload, "A" and the flow's source (tests/flows/storefile.py, which SharedB shares)
    assert after_first == 3
    second = await SharedA(store=store, echo=False).run()
    assert blob_count(store) == after_first  # the same values again: no new blob
    other = await SharedB(store=store, echo=False).run()
    assert blob_count(store) == after_first + 1  # only "B" is new

    shas = {
        first["start"].task["payload"].sha,
        second["start"].task["payload"].sha,
        other["middle"].task["payload"].sha,
        other["end"].task["payload"].sha,
    }
    assert len(shas) == 1
    rows = query(
        store, "SELECT count(*), count(DISTINCT sha) FROM artifacts WHERE name = 'payload'"
    )
    assert rows == [(6, 1)]  # 3 runs x 2 tasks hold it, by one address
    held = query(
        store,
        "SELECT count(*) FROM blobs "
        "WHERE sha IN (SELECT sha FROM artifacts WHERE name = 'payload')",
    )
    assert held == [(1,)]
    assert other.data.payload == SHARED_PAYLOAD


# --- large values are chunked ------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_large_array_is_stored_in_chunks_and_loads_back_equal(store: str) -> None:
    run = await BigFlow(store=store, echo=False).run()
    size = BIG_LEN * 8
    assert size > 5 * MIB

    [(sha, stored_size, nchunks, inline)] = query(
        store,
        "SELECT b.sha, b.size, b.nchunks, b.data IS NOT NULL FROM blobs b "
        "WHERE b.sha IN (SELECT sha FROM artifacts WHERE name = 'big')",
    )
    assert stored_size == size
    assert nchunks == 6
    assert not inline  # not one oversized row
    lengths = [
        n
        for (n,) in query(
            store, "SELECT length(data) FROM blob_chunks WHERE sha = ? ORDER BY idx", (sha,)
        )
    ]
    assert lengths == [MIB] * 5 + [size - 5 * MIB]
    assert query(store, "SELECT count(*) FROM blob_chunks") == [(6,)]  # stored once

    # read inside the run by a later task ...
    middle = run["middle"].data
    assert middle.total == float(big_array().sum())
    assert middle.shape == (BIG_LEN,)
    assert middle.dtype == "float64"
    assert middle.last == (BIG_LEN - 1) * 0.5
    # ... and by the client
    art = run["start"].task["big"]
    assert art.encoding == "numpy"
    assert art.size == size
    value = art.data
    assert value.dtype == np.float64 and value.shape == (BIG_LEN,)
    assert np.array_equal(value, big_array())
    assert run["end"].task["big"].sha == art.sha


# --- files that are not our stores -------------------------------------------------------------


def garbage_file(path: Path) -> None:
    path.write_bytes(b"this is not a database\n" * 500)


def other_program_db(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")  # a reader of it would need -wal and -shm
    conn.execute("PRAGMA application_id = 7")
    conn.execute("CREATE TABLE contacts (name TEXT, phone TEXT)")
    conn.execute("INSERT INTO contacts VALUES ('Ada', '123')")
    conn.commit()
    conn.close()


@pytest.mark.anyio
@pytest.mark.parametrize(
    "make", [garbage_file, other_program_db], ids=["not-sqlite", "another-programs-sqlite"]
)
async def test_a_foreign_file_is_refused_and_left_alone(tmp_path: Path, make: Any) -> None:
    path = tmp_path / "foreign.db"
    make(path)
    before = path.read_bytes()
    with pytest.raises(StoreFormatError) as info:
        await BigFlow(store=str(path), echo=False).run()
    assert str(path) in str(info.value)
    assert path.read_bytes() == before
    with pytest.raises(StoreFormatError) as client_info:
        Flow("BigFlow", store=str(path)).latest_run  # noqa: B018
    assert str(path) in str(client_info.value)
    assert sorted(os.listdir(tmp_path)) == ["foreign.db"]  # no -wal or -shm left beside it


def set_user_version(path: str, version: int) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute(f"PRAGMA user_version = {version}")
    finally:
        conn.close()


@pytest.mark.anyio
async def test_a_store_from_a_newer_version_is_refused(store: str, tmp_path: Path) -> None:
    await SharedA(store=store, echo=False).run()
    # a store this process has never opened, as a newer asyncflow left it
    newer = str(tmp_path / "newer.db")
    shutil.copyfile(store, newer)
    set_user_version(newer, 999)
    with pytest.raises(StoreFormatError) as info:
        await SharedA(store=newer, echo=False).run()
    assert newer in str(info.value)
    with pytest.raises(StoreFormatError) as client_info:
        Flow("SharedA", store=newer).latest_run  # noqa: B018
    assert newer in str(client_info.value)
    # refused from the file's header: no -wal or -shm left beside a file we refuse
    assert not [n for n in os.listdir(tmp_path) if n.startswith("newer.db-")]
    assert query(newer, "PRAGMA user_version") == [(999,)]
    assert query(newer, "SELECT count(*) FROM runs") == [(1,)]


@pytest.mark.anyio
async def test_a_store_upgraded_by_a_newer_version_after_a_run_is_refused(store: str) -> None:
    """Another process (a newer asyncflow) upgrades the store between two of our runs."""
    await SharedA(store=store, echo=False).run()
    set_user_version(store, 999)
    with pytest.raises(StoreFormatError) as info:
        await SharedA(store=store, echo=False).run()
    assert store in str(info.value)
    assert query(store, "SELECT count(*) FROM runs") == [(1,)]


@pytest.mark.anyio
async def test_a_trigger_added_by_another_program_between_two_runs_is_refused(store: str) -> None:
    """The writer skips its full schema check while the schema cookie is unchanged: a trigger
    created by another connection bumps it, and the next run's writes are refused."""
    await SharedA(store=store, echo=False).run()
    with closing(sqlite3.connect(store)) as conn, conn:
        conn.execute("CREATE TRIGGER sneaky AFTER INSERT ON tasks BEGIN SELECT 1; END")
    with pytest.raises(StoreFormatError) as info:
        await SharedA(store=store, echo=False).run()
    assert "trigger" in str(info.value)
    assert query(store, "SELECT count(*) FROM runs") == [(1,)]


# --- integrity -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_store_passes_sqlite_integrity_check_after_runs(store: str) -> None:
    await RichFlow(store=store, echo=False).run()
    await BigFlow(store=store, echo=False).run()
    with pytest.raises(StepFailed):
        await FailingFlow(store=store, echo=False).run()
    await SharedA(store=store, echo=False).run()
    await SharedB(store=store, echo=False).run()
    assert query(store, "PRAGMA integrity_check") == [("ok",)]
    assert query(store, "PRAGMA foreign_key_check") == []
    statuses = query(store, "SELECT flow, status FROM runs ORDER BY id")
    assert statuses == [
        ("RichFlow", "succeeded"),
        ("BigFlow", "succeeded"),
        ("FailingFlow", "failed"),
        ("SharedA", "succeeded"),
        ("SharedB", "succeeded"),
    ]
    # every artifact points at a stored blob
    dangling = query(
        store, "SELECT count(*) FROM artifacts WHERE sha NOT IN (SELECT sha FROM blobs)"
    )
    assert dangling == [(0,)]


def test_opening_a_reader_keeps_the_writers_locks(tmp_path: Path) -> None:
    """POSIX drops all of a process's locks on a file when it closes any descriptor of it.

    A reader opened next to this process's writer must not open the file with Python (as a
    header check once did): another process closing its connection would then take the WAL
    away from under our writer, and later commits would be invisible to everyone else.
    """
    import subprocess
    import sys

    from asyncflow._store._db import open_reader, open_writer

    path = str(tmp_path / "locks.db")
    writer = open_writer(path)
    try:
        writer.execute("INSERT INTO store_info (key, value) VALUES ('a', '1')")
        reader = open_reader(path)
        reader.close()
        count = "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        count += "print(c.execute('SELECT count(*) FROM store_info').fetchone()[0]); c.close()"
        subprocess.run([sys.executable, "-c", count, path], check=True, capture_output=True)
        writer.execute("INSERT INTO store_info (key, value) VALUES ('b', '2')")
        seen = subprocess.run(
            [sys.executable, "-c", count, path], check=True, capture_output=True, text=True
        ).stdout.strip()
        assert Path(path + "-wal").exists()
        assert seen == "3"  # created_at, a and b
    finally:
        writer.close()


def _damage_page_of(store: str, name: str) -> None:
    """Overwrite the b-tree page header of the root page of table or index ``name``."""
    with closing(sqlite3.connect(store)) as conn:
        [(root,)] = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (name,))
        page = conn.execute("PRAGMA page_size").fetchone()[0]
    assert not os.path.exists(store + "-wal")
    with open(store, "r+b") as fh:
        fh.seek((root - 1) * page)
        fh.write(b"\x00" * 8)


@pytest.mark.anyio
async def test_a_damaged_store_accepts_no_new_run(store: str) -> None:
    await RichFlow(store=store, echo=False).run()
    Store.close_all()  # as at exit: the store is one file again
    # A page no new run touches (the index of tags: the run below has none) is damaged:
    # reading tagged runs would fail, so the store must not take new runs either.
    _damage_page_of(store, "run_tags_by_tag")
    with open(store, "rb") as fh:
        before = fh.read()
    with pytest.raises(StoreError, match=r"it is damaged .*quick_check") as info:
        await RichFlow(store=store, echo=False).run()
    assert "restore the file from a copy" in str(info.value)
    assert "asyncflow export" in str(info.value)
    with pytest.raises(StoreError, match="it is damaged"):
        asyncflow.gc(store, older_than=0)
    with open(store, "rb") as fh:
        assert fh.read() == before  # nothing written


def _read_only_folder(kind: str, folder: Path, work: Path) -> Path:
    """``folder`` made read-only the way ``kind`` says; returns the path to read it at."""
    if kind == "mount":
        view = work / "media"
        view.mkdir()
        for argv in (["mount", "--bind", str(folder), str(view)],
                     ["mount", "-o", "remount,bind,ro", str(view)]):  # fmt: skip
            done = subprocess.run(argv, capture_output=True, text=True)
            if done.returncode != 0:
                subprocess.run(["umount", str(view)], capture_output=True)
                pytest.skip(f"cannot make a read-only mount here: {done.stderr.strip()}")
        return view
    done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot make the folder immutable here: {done.stderr.strip()}")
    return folder


def _undo_read_only(kind: str, view: Path) -> None:
    argv = ["umount", str(view)] if kind == "mount" else ["chattr", "-i", str(view)]
    subprocess.run(argv, capture_output=True)


@pytest.mark.skipif(shutil.which("mount") is None, reason="needs mount and chattr")
@pytest.mark.parametrize("kind", ["mount", "chattr"])
def test_a_store_on_read_only_media_reads_normally(tmp_path: Path, kind: str) -> None:
    # A read-only mount is what read-only media look like to SQLite (a bare CANTOPEN when
    # it tries to create the -shm file); an immutable folder refuses new files even to root.
    folder = tmp_path / "folder"
    folder.mkdir()
    store = str(folder / "store.db")
    flow_file = str(Path(__file__).parent / "flows" / "disk.py")
    done = subprocess.run(
        [sys.executable, flow_file, "TinyFlow", "run", "--quiet", "--store", store],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and not os.path.exists(store + "-wal"), done.stderr
    view = _read_only_folder(kind, folder, tmp_path)
    try:
        path = str(view / "store.db")
        with Flow("TinyFlow", path) as flow:
            run = flow.latest_run
            assert run is not None and run.successful and run["start"].data.x == 1
        assert asyncflow.stats(path).runs == {"succeeded": 1}
        out = subprocess.run(
            [sys.executable, "-m", "asyncflow", "runs", "--store", path],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0 and "TinyFlow" in out.stdout, out.stderr
        # Writing is refused with the read-only folder's message (T11), and nothing changes.
        done = subprocess.run(
            [sys.executable, flow_file, "TinyFlow", "run", "--quiet", "--store", path],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 2
        assert f"its folder {str(view)!r} is read-only" in done.stderr
        assert sorted(os.listdir(view)) == ["store.db"]
    finally:
        _undo_read_only(kind, view)


def test_a_store_created_by_another_process_between_two_reads_is_never_another_programs(
    tmp_path: Path,
) -> None:
    # The format check reads the file's application id, schema version and table count. If
    # they were read one statement at a time, another process could create the store between
    # them (the id read as 0, the tables as there) and a new store would be refused as "a
    # database of another program" (seen in stress_processes). Here the other process is
    # another connection that creates the store as soon as the check's first read is done.
    from asyncflow._store._db import open_writer
    from asyncflow._store._format import check_format

    path = str(tmp_path / "new.db")
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        statements: list[str] = []

        def created_by_another(statement: str) -> None:
            if statement.startswith("--"):
                return  # a step inside a running statement (which holds the read lock)
            statements.append(statement)
            if len(statements) == 2:  # the check's first statement has finished
                open_writer(path).close()

        conn.set_trace_callback(created_by_another)
        version = check_format(conn, path, allow_empty=True)
        conn.set_trace_callback(None)
    assert version == 0 or (len(statements) >= 2 and version > 0)
    with closing(sqlite3.connect(path)) as again:  # and a later check finds a store
        if len(statements) < 2:
            open_writer(path).close()
        assert check_format(again, path, allow_empty=False) > 0
