"""Run archives (issue 4, "Sharing runs"): export, reading an archive in place, import.

Every store and archive is a real file in tmp_path, filled by real runs of the flows in
tests/flows/archive_flows.py. What an archive holds is checked with sqlite3 on the file
itself, row by row against the store it came from; what a user reads back through the sync and
async client is compared with what the source store gives.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest

import asyncflow
from asyncflow import (
    ArchiveManifest,
    Flow,
    Run,
    StepFailed,
    StoreError,
    StoreFormatError,
    UntrustedArtifactError,
    aexport_runs,
    aimport_archive,
    aread_archive,
    export_runs,
    import_archive,
    read_archive,
)
from asyncflow._cli import main as asyncflow_cli
from asyncflow._store._schema import SCHEMA_VERSION
from tests.flows import archive_flows as af
from tests.test_error_catalogue import unprivileged

ROOT = Path(__file__).resolve().parents[1]
FLOWS_FILE = Path(af.__file__)
PICKLED = "<pickled: compared by sha only>"
# The tables of a run's records, each with its key.
RUN_TABLES = {
    "run_tags": "run_id, tag",
    "run_params": "run_id, name",
    "tasks": "run_id, id",
    "attempts": "run_id, task_id, attempt",
    "artifacts": "run_id, task_id, name",
}
ALL_TABLES = ("runs", *RUN_TABLES, "blobs", "blob_chunks")


# --- the source store, built once ----------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store with ShareFlow/1 (alpha 2, tags t1+shared), ShareFlow/2 (defaults, tag shared),
    Resumable/3 (failed in middle) and Resumable/4 (its successful resume)."""
    path = str(tmp_path_factory.mktemp("built") / "source.db")

    async def build() -> None:
        await af.ShareFlow(store=path, echo=False, tags=["t1", "shared"]).run(alpha=2.0)
        await af.ShareFlow(store=path, echo=False, tags=["shared"]).run()
        resumable = af.Resumable(store=path, echo=False)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(af.FAIL_VARIABLE, "1")
            with pytest.raises(StepFailed):
                await resumable.run()
        await resumable.resume("3")

    anyio.run(build)
    return path


def copy_store(path: str, dest: Path) -> str:
    """A consistent copy of the store at ``path`` (SQLite's backup: WAL content included)."""
    with (
        contextlib.closing(sqlite3.connect(path)) as src,
        contextlib.closing(sqlite3.connect(dest)) as dst,
    ):
        src.backup(dst)
    return str(dest)


@pytest.fixture
def source(built: str, tmp_path: Path) -> str:
    """This test's own copy of the built store."""
    return copy_store(built, tmp_path / "source.db")


def run_of(store: str, pathspec: str) -> Run:
    flow, run_id = pathspec.split("/")
    return Flow(flow, store=store)[run_id]


# --- reading files directly --------------------------------------------------------------------


def query(path: str, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return [tuple(row) for row in conn.execute(sql, args).fetchall()]


def counts(path: str) -> dict[str, int]:
    return {t: query(path, f"SELECT count(*) FROM {t}")[0][0] for t in ALL_TABLES}


def integrity(path: str) -> list[str]:
    return [row[0] for row in query(path, "PRAGMA integrity_check")]


def in_list(ids: list[int]) -> str:
    return "(" + ",".join(str(int(i)) for i in ids) + ")"


def referenced(path: str, ids: list[int]) -> set[bytes]:
    """The shas the runs ``ids`` of a store refer to: artifacts, parameters, flow source."""
    found = query(
        path,
        f"SELECT sha FROM artifacts WHERE run_id IN {in_list(ids)} "
        f"UNION SELECT sha FROM run_params WHERE run_id IN {in_list(ids)} "
        f"UNION SELECT source_sha FROM runs WHERE id IN {in_list(ids)} AND source_sha IS NOT NULL",
    )
    return {bytes(row[0]) for row in found}


def shas(path: str) -> set[bytes]:
    return {bytes(row[0]) for row in query(path, "SELECT sha FROM blobs")}


RUN_COLUMNS = (
    "id, flow, status, created_at, finished_at, origin_run_id, graph, error, owner_pid, "
    "owner_host, heartbeat_at, uid, source_sha, imported"
)


def assert_archive_holds(store: str, archive: str, ids: list[int]) -> None:
    """The archive holds exactly the runs ``ids`` of ``store``, every record of theirs as the
    store has it, every blob they refer to and no other, without macs, untrusted."""
    where = in_list(ids)
    assert query(archive, f"SELECT {RUN_COLUMNS} FROM runs ORDER BY id") == query(
        store, f"SELECT {RUN_COLUMNS} FROM runs WHERE id IN {where} ORDER BY id"
    )
    assert query(archive, "SELECT DISTINCT trusted FROM runs") == [(0,)]
    assert all(row[0] is not None for row in query(archive, "SELECT source_sha FROM runs"))
    for table, key in RUN_TABLES.items():
        in_archive = query(archive, f"SELECT * FROM {table} ORDER BY {key}")
        in_store = query(store, f"SELECT * FROM {table} WHERE run_id IN {where} ORDER BY {key}")
        assert in_archive == in_store, table
    wanted = referenced(store, ids)
    assert shas(archive) == wanted
    blob_columns = "sha, encoding, meta, size, data, nchunks"
    stored = {bytes(row[0]): row for row in query(store, f"SELECT {blob_columns} FROM blobs")}
    assert query(archive, f"SELECT {blob_columns} FROM blobs ORDER BY sha") == [
        stored[sha] for sha in sorted(wanted)
    ]
    assert query(archive, "SELECT count(*) FROM blobs WHERE mac IS NOT NULL") == [(0,)]
    chunks = query(archive, "SELECT sha, idx, data FROM blob_chunks ORDER BY sha, idx")
    assert chunks == [
        row
        for row in query(store, "SELECT sha, idx, data FROM blob_chunks ORDER BY sha, idx")
        if bytes(row[0]) in wanted
    ]
    assert integrity(archive) == ["ok"]


def assert_no_leftovers(folder: Path, expected: set[str]) -> None:
    """Nothing but ``expected`` in ``folder`` (and a store's -wal and -shm files): no partial
    archive, no temporary file."""
    found = {name for name in os.listdir(folder) if not name.endswith(("-wal", "-shm"))}
    assert found == expected


# --- what a user reads back ------------------------------------------------------------------


def comparable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return ("ndarray", value.dtype.str, value.shape, value.tobytes())
    return (type(value).__name__, value)


def artifact_entry(encoding: str, sha: str, size: int, value: Any) -> tuple[Any, ...]:
    return (encoding, sha, size, PICKLED if encoding == "pickle" else comparable(value))


def snapshot(run: Run) -> dict[str, Any]:
    """Everything the sync client reads of ``run``, except its id (import renumbers runs).

    Pickled values are compared by sha, size and encoding (their bytes), not loaded: runs in
    an archive or imported are not trusted."""
    steps: list[tuple[str, list[dict[str, Any]]]] = []
    for step_ in run:
        tasks = []
        for task in step_:
            tasks.append(
                {
                    "id": task.id,
                    "indices": task.foreach_indices,
                    "status": task.status,
                    "started": task.started_at,
                    "finished": task.finished_at,
                    "stdout": task.stdout,
                    "stderr": task.stderr,
                    "exception": task.exception,
                    "traceback": task.traceback,
                    "retry_count": task.retry_count,
                    "origin_task_id": task.origin_task_id,
                    "attempts": task.attempts,
                    "artifacts": {
                        a.name: artifact_entry(
                            a.encoding, a.sha, a.size, None if a.encoding == "pickle" else a.data
                        )
                        for a in task
                    },
                }
            )
        steps.append((step_.name, tasks))
    return {
        "flow": run.flow_name,
        "uid": run.uid,
        "status": run.status,
        "created": run.created_at,
        "finished": run.finished_at,
        "error": run.error,
        "tags": run.tags,
        "parameters": {k: comparable(v) for k, v in run.parameters.items()},
        "graph": run.graph,
        "source": run.source,
        "steps": steps,
    }


async def asnapshot(run: Run) -> dict[str, Any]:
    """:func:`snapshot` through the awaitable twins only."""
    steps: list[tuple[str, list[dict[str, Any]]]] = []
    for step_ in await run.asteps():
        tasks = []
        for task in step_:
            artifacts = {}
            for a in await task.aartifacts():
                value = None if a.encoding == "pickle" else await a.adata()
                artifacts[a.name] = artifact_entry(a.encoding, a.sha, a.size, value)
            tasks.append(
                {
                    "id": task.id,
                    "indices": task.foreach_indices,
                    "status": task.status,
                    "started": task.started_at,
                    "finished": task.finished_at,
                    "stdout": await task.astdout(),
                    "stderr": await task.astderr(),
                    "exception": task.exception,
                    "traceback": task.traceback,
                    "retry_count": task.retry_count,
                    "origin_task_id": task.origin_task_id,
                    "attempts": await task.aattempts(),
                    "artifacts": artifacts,
                }
            )
        steps.append((step_.name, tasks))
    return {
        "flow": run.flow_name,
        "uid": run.uid,
        "status": run.status,
        "created": run.created_at,
        "finished": run.finished_at,
        "error": run.error,
        "tags": run.tags,
        "parameters": {k: comparable(v) for k, v in (await run.aparameters()).items()},
        "graph": run.graph,
        "source": await run.asource(),
        "steps": steps,
    }


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = asyncflow_cli(list(argv))
    return code, out.getvalue(), err.getvalue()


# --- export: what an archive holds ----------------------------------------------------------


def test_export_one_run_holds_that_run_and_nothing_else(source: str, tmp_path: Path) -> None:
    run = run_of(source, "ShareFlow/1")
    path = tmp_path / "one.afa"
    before = time.time()

    manifest = run.export(path)

    assert_archive_holds(source, str(path), [1])
    # what an archive must carry, present in this one (the flow makes every kind of record)
    tags = {t for (t,) in query(str(path), "SELECT tag FROM run_tags")}
    assert tags == {"shared", "t1"} | run.system_tags  # the system tags travel too
    assert query(str(path), "SELECT count(*) FROM attempts") == [(1,)]  # flaky's failed try
    assert query(str(path), "SELECT count(*) FROM blob_chunks")[0][0] >= 3
    assert query(str(path), "SELECT count(DISTINCT encoding) FROM blobs") == [(3,)]
    logs = query(str(path), "SELECT stdout, stderr FROM tasks WHERE step = 'start'")
    assert logs == [("start demo\n", "start warns\n")]
    assert shas(source) - shas(str(path))  # the store has values the archive left out

    assert manifest.path == str(path)
    assert manifest.runs == ("ShareFlow/1",)
    assert manifest.blobs == len(shas(str(path)))
    assert manifest.payload_bytes == query(str(path), "SELECT sum(size) FROM blobs")[0][0]
    assert manifest.asyncflow_version == asyncflow.__version__
    assert manifest.schema_version == SCHEMA_VERSION
    assert manifest.host == socket.gethostname()
    assert manifest.source == os.path.abspath(source)
    assert before - 1 <= manifest.exported_at.timestamp() <= time.time() + 1
    assert manifest.exported_at.utcoffset() == timedelta(0)
    assert manifest.digest.startswith("sha256:") and len(manifest.digest) == 7 + 64
    assert read_archive(path) == manifest
    assert read_archive(path, verify=True) == manifest
    stored = json.loads(query(str(path), "SELECT value FROM store_info WHERE key='archive'")[0][0])
    assert stored["digest"] == manifest.digest
    assert [(r["flow"], r["id"], r["uid"]) for r in stored["runs"]] == [("ShareFlow", 1, run.uid)]


def test_export_several_runs_of_several_flows(source: str, tmp_path: Path) -> None:
    path = tmp_path / "two.afa"
    manifest = export_runs(path, [run_of(source, "ShareFlow/1"), run_of(source, "Resumable/3")])

    assert_archive_holds(source, str(path), [1, 3])
    assert manifest.runs == ("Resumable/3", "ShareFlow/1")
    assert read_archive(path) == manifest
    # ShareFlow/2's own values (its squares, with alpha 0.5) stayed behind
    left_out = referenced(source, [2]) - referenced(source, [1, 3])
    assert left_out and not left_out & shas(str(path))


def test_export_on_the_command_line(source: str, tmp_path: Path) -> None:
    whole = tmp_path / "whole.afa"
    code, out, err = cli("export", "ShareFlow", "-o", str(whole), "--store", source)
    assert (code, err) == (0, "")
    assert "ShareFlow/1" in out and "ShareFlow/2" in out and str(whole) in out
    assert_archive_holds(source, str(whole), [1, 2])  # a bare flow name: all its runs

    picked = tmp_path / "picked.afa"
    code, out, err = cli(
        "export", "ShareFlow/2", "Resumable/4", "-o", str(picked), "--store", source
    )
    assert (code, err) == (0, "")
    assert_archive_holds(source, str(picked), [2, 4])

    code, out, err = cli("archive", str(picked), "--verify")
    assert (code, err) == (0, "")
    assert "Resumable/4, ShareFlow/2" in out and "verified" in out

    before = picked.read_bytes()
    code, out, err = cli("export", "ShareFlow/1", "-o", str(picked), "--store", source)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "the file exists" in err and "--force" in err
    assert picked.read_bytes() == before
    code, out, err = cli("export", "ShareFlow/1", "-o", str(picked), "--store", source, "--force")
    assert (code, err) == (0, "")
    assert_archive_holds(source, str(picked), [1])
    assert_no_leftovers(tmp_path, {"source.db", "whole.afa", "picked.afa"})


def test_an_existing_file_is_replaced_only_when_asked(source: str, tmp_path: Path) -> None:
    path = tmp_path / "a.afa"
    run_of(source, "ShareFlow/1").export(path)
    before = path.read_bytes()

    with pytest.raises(StoreError, match="the file exists") as info:
        run_of(source, "ShareFlow/2").export(path)
    assert str(path) in str(info.value)
    assert path.read_bytes() == before

    manifest = run_of(source, "ShareFlow/2").export(path, overwrite=True)
    assert manifest.runs == ("ShareFlow/2",) == read_archive(path).runs
    assert_archive_holds(source, str(path), [2])
    assert_no_leftovers(tmp_path, {"source.db", "a.afa"})


def test_a_failed_export_leaves_no_file_behind(source: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    dest = out / "gone.afa"
    doomed = run_of(source, "ShareFlow/2")
    with contextlib.closing(sqlite3.connect(source)) as conn, conn:
        conn.execute("DELETE FROM runs WHERE id = 2")  # the run vanishes after it was read

    with pytest.raises(StoreError, match="has no such run") as info:
        doomed.export(dest)
    assert "ShareFlow/2" in str(info.value) and source in str(info.value)
    assert_no_leftovers(out, set())

    # a value missing from the store: found after the copy began, in the middle of the work
    with contextlib.closing(sqlite3.connect(source)) as conn, conn:
        conn.execute(
            "DELETE FROM blobs WHERE sha IN (SELECT sha FROM artifacts WHERE run_id = 1 "
            "AND name = 'total')"
        )
    with pytest.raises(StoreError, match="missing from the store") as info:
        run_of(source, "ShareFlow/1").export(dest)
    assert source in str(info.value)
    assert_no_leftovers(out, set())

    with pytest.raises(StoreError, match="does not exist"):
        run_of(source, "Resumable/3").export(out / "no" / "such" / "folder.afa")
    with pytest.raises(StoreError, match="is a folder"):
        run_of(source, "Resumable/3").export(out)
    with pytest.raises(StoreError, match="nothing to export"):
        export_runs(dest, [])
    assert_no_leftovers(out, set())


def test_runs_of_two_stores_do_not_go_into_one_archive(
    source: str, built: str, tmp_path: Path
) -> None:
    with pytest.raises(StoreError, match="several stores") as info:
        export_runs(
            tmp_path / "mixed.afa", [run_of(source, "ShareFlow/1"), run_of(built, "ShareFlow/2")]
        )
    assert source in str(info.value) and built in str(info.value)
    assert_no_leftovers(tmp_path, {"source.db"})


@pytest.mark.anyio
async def test_a_running_run_is_not_exported(tmp_path: Path) -> None:
    store = str(tmp_path / "live.db")
    out = tmp_path / "out"
    out.mkdir()
    entered, release = anyio.Event(), anyio.Event()
    flow = af.gated_flow(entered, release)(store=store, echo=False)
    async with anyio.create_task_group() as tg:
        tg.start_soon(flow.run)
        with anyio.fail_after(30):
            await entered.wait()
        client = await Flow.aopen("Gated", store=store)
        live = await client.alatest_run()
        assert live is not None and live.status == "running"
        with pytest.raises(StoreError, match="still running") as info:
            await live.aexport(out / "live.afa")
        assert "Gated/1" in str(info.value) and "once it has finished" in str(info.value)
        assert_no_leftovers(out, set())
        release.set()
    manifest = await live.aexport(out / "live.afa")  # finished now: the same Run exports
    assert manifest.runs == ("Gated/1",)
    assert_archive_holds(store, str(out / "live.afa"), [1])


# --- reading an archive in place -----------------------------------------------------------------


PATHSPECS = ("ShareFlow/1", "ShareFlow/2", "Resumable/3", "Resumable/4")


@pytest.fixture
def archive(source: str, tmp_path: Path) -> str:
    """Every run of the source store, in one archive."""
    path = tmp_path / "all.afa"
    export_runs(path, [run_of(source, p) for p in PATHSPECS])
    return str(path)


def test_an_archive_reads_like_its_store(source: str, archive: str) -> None:
    for pathspec in PATHSPECS:
        original, copy = run_of(source, pathspec), run_of(archive, pathspec)
        assert snapshot(copy) == snapshot(original), pathspec
        assert (copy.id, copy.origin_run_id) == (original.id, original.origin_run_id)
        assert copy.imported_from is None
    shared = Flow("ShareFlow", store=archive)
    assert [r.id for r in shared.runs()] == ["2", "1"]
    assert [r.id for r in shared.runs(tag="t1")] == ["1"]
    first = shared["1"]
    assert first.data.result == {"total": 28.0, "label": "demo", "cells": 66}
    assert first["start"].task.data.pair == ("demo", 7)
    assert first["start"].task.data.matrix.shape == (3, 4)
    assert [t.data.sq for t in first["body"]] == [2.0, 8.0, 18.0]
    assert [(a.attempt, a.status) for a in first["flaky"].task.attempts] == [
        (0, "failed"),
        (1, "succeeded"),
    ]
    assert first["flaky"].task.attempts[0].stdout == "attempt 0\n"
    assert "class ShareFlow(FlowSpec):" in (first.source or "")
    assert Flow("Resumable", store=archive)["4"].origin_run_id == "3"
    assert query(archive, "SELECT DISTINCT trusted FROM runs") == [(0,)]
    assert all(run.trusted is False for run in shared.runs())
    code, out, err = cli("runs", "--store", archive)
    assert code == 0 and err == "" and "ShareFlow" in out and "Resumable" in out


@pytest.mark.anyio
async def test_an_archive_reads_like_its_store_async(source: str, archive: str) -> None:
    for pathspec in PATHSPECS:
        flow_name, run_id = pathspec.split("/")
        async with Flow.aopen(flow_name, store=archive) as flow:
            copy = await flow.aget(run_id)
            assert await asnapshot(copy) == snapshot(run_of(source, pathspec)), pathspec
            assert flow._handle._conn is None  # no blocking connection was opened
    assert await aread_archive(archive) == read_archive(archive)
    assert await aread_archive(archive, verify=True) == read_archive(archive)


def test_pickled_values_of_archived_and_imported_runs_are_refused(
    source: str, archive: str, tmp_path: Path
) -> None:
    assert run_of(source, "ShareFlow/1")["start"].task.data.point == af.Point(1, 2)  # our own
    [imported, *_] = import_archive(archive, store=tmp_path / "target.db")
    for run in (run_of(archive, "ShareFlow/1"), imported):
        start = run["start"].task
        assert start["point"].encoding == "pickle"
        with pytest.raises(UntrustedArtifactError, match="point"):
            _ = start.data.point
        with pytest.raises(UntrustedArtifactError, match="point"):
            anyio.run(start.adata, "point")
        assert start.data.items == [1, 2, 3]  # msgpack and numpy still load
        assert start.data.matrix.sum() == 66


def test_trusted_import_loads_pickled_values(source: str, archive: str, tmp_path: Path) -> None:
    pytest.importorskip("asyncflow._store._signing")
    runs = import_archive(archive, store=tmp_path / "target.db", trust=True)
    shared = [r for r in runs if r.flow_name == "ShareFlow"]
    assert [r["start"].task.data.point for r in shared] == [af.Point(1, 2)] * 2
    assert query(str(tmp_path / "target.db"), "SELECT DISTINCT trusted FROM runs") == [(1,)]
    assert all(run.trusted for run in runs)


@pytest.mark.anyio
async def test_nothing_is_written_into_an_archive(source: str, archive: str) -> None:
    before = Path(archive).read_bytes()
    folder = set(os.listdir(Path(archive).parent))
    with pytest.raises(StoreError, match="is a run archive, which is read-only") as info:
        await af.ShareFlow(store=archive, echo=False).run()
    assert archive in str(info.value) and "asyncflow import" in str(info.value)
    with pytest.raises(StoreError, match="is a run archive, which is read-only"):
        await af.Resumable(store=archive, echo=False).resume("3")
    run = run_of(archive, "ShareFlow/1")
    with pytest.raises(StoreError, match="is a run archive, which is read-only"):
        run.add_tag("more")
    assert run.tags == {"t1", "shared"} == run_of(archive, "ShareFlow/1").tags
    code, out, err = cli("import", archive, "--store", archive)
    assert (code, out) == (2, "") and err.count("\n") == 1 and "read-only" in err
    with pytest.raises(StoreError, match="is a run archive, which is read-only"):
        import_archive(archive, store=archive)
    assert Path(archive).read_bytes() == before
    assert set(os.listdir(Path(archive).parent)) == folder  # no -wal, -shm or journal left


# The child reads an archive it may not write, in each way, and reports each outcome as JSON.
READ_ONLY_CHILD = r"""
import asyncio, json, sys
from asyncflow import Flow, import_archive, read_archive

archive, target = sys.argv[1:3]
seen = {}

def report(label, fn):
    try:
        seen[label] = {"value": fn()}
    except BaseException as exc:
        seen[label] = {"type": type(exc).__name__, "message": str(exc)}

async def aread():
    async with Flow.aopen("ShareFlow", store=archive) as flow:
        return await (await flow.aget("1")).adata("result")

report("client", lambda: Flow("ShareFlow", store=archive)["1"].data.result)
report("aclient", lambda: asyncio.run(aread()))
report("verify", lambda: list(read_archive(archive, verify=True).runs))
report("import", lambda: [r.pathspec for r in import_archive(archive, store=target)])
print(json.dumps(seen))
"""


@pytest.mark.parametrize("where", ["file", "folder"])
def test_an_archive_you_may_not_write_still_reads(archive: str, tmp_path: Path, where: str) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    path = folder / "all.afa"
    shutil.copyfile(archive, path)
    target = tmp_path / "target.db"
    if where == "file":
        path.chmod(0o444)
    else:
        folder.chmod(0o555)
    try:
        done = subprocess.run(
            unprivileged([sys.executable, "-c", READ_ONLY_CHILD, str(path), str(target)]),
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
            check=False,
        )
    finally:
        folder.chmod(0o755)
        path.chmod(0o644)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    result = {"total": 28.0, "label": "demo", "cells": 66}
    assert seen["client"] == {"value": result}
    assert seen["aclient"] == {"value": result}
    assert seen["verify"] == {"value": sorted(PATHSPECS)}
    assert seen["import"] == {"value": list(PATHSPECS)}
    assert sorted(os.listdir(folder)) == ["all.afa"]


# --- import ----------------------------------------------------------------------------------


def test_import_copies_runs_under_new_ids(source: str, archive: str, tmp_path: Path) -> None:
    target = str(tmp_path / "target.db")
    own = [anyio.run(lambda: af.Resumable(store=target, echo=False).run(scale=5))]
    own_before = snapshot(own[0])

    runs = import_archive(archive, store=target)

    assert [r.pathspec for r in runs] == [
        "ShareFlow/2",
        "ShareFlow/3",
        "Resumable/4",
        "Resumable/5",
    ]  # the target's run 1 keeps its id; the archive's runs take the next ones
    for run, pathspec in zip(runs, PATHSPECS, strict=True):
        original = run_of(source, pathspec)
        assert snapshot(run) == snapshot(original), pathspec
        assert run.uid == original.uid
        info = run.imported_from
        assert info is not None
        assert info["run_id"] == int(original.id)
        assert info["archive"] == "all.afa"
        assert info["digest"] == read_archive(archive).digest
        assert info["exported_by"]["store"] == os.path.abspath(source)
    assert snapshot(run_of(target, "Resumable/1")) == own_before
    assert run_of(target, "Resumable/1").imported_from is None
    assert run_of(target, "Resumable/1").trusted and not any(run.trusted for run in runs)
    assert query(target, "SELECT id, trusted FROM runs ORDER BY id") == [
        (1, 1),
        (2, 0),
        (3, 0),
        (4, 0),
        (5, 0),
    ]
    # values that came in are not this user's: no signature was copied (the target's own
    # run has no pickled value, the only kind that is signed)
    assert query(target, "SELECT count(*) FROM blobs WHERE encoding = 'pickle'")[0][0] > 0
    assert query(target, "SELECT count(*) FROM blobs WHERE mac IS NOT NULL") == [(0,)]
    assert integrity(target) == ["ok"]


@pytest.mark.anyio
async def test_a_run_keeps_its_uid_from_the_start(tmp_path: Path) -> None:
    store = str(tmp_path / "store.db")
    returned = await af.Resumable(store=store, echo=False).run()
    assert returned.uid is not None and len(returned.uid) == 32
    assert returned.uid == run_of(store, "Resumable/1").uid
    resumed = await af.Resumable(store=store, echo=False).resume("1", step="end")
    assert resumed.uid not in (None, returned.uid)
    assert resumed.uid == run_of(store, "Resumable/2").uid


def test_import_on_the_command_line(archive: str, tmp_path: Path) -> None:
    target = str(tmp_path / "target.db")
    code, out, err = cli("import", archive, "--store", target)
    assert (code, err) == (0, "")
    assert out.splitlines() == [f"{p}: imported as {p}" for p in PATHSPECS]
    code, out, err = cli("import", archive, "--store", target)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"{p}: already in the store as {p}; not copied again" for p in PATHSPECS
    ]
    code, out, err = cli("import", str(tmp_path / "nowhere.afa"), "--store", target)
    assert code == 2 and err.count("\n") == 1 and "there is no archive at" in err


def test_importing_twice_copies_nothing(source: str, archive: str, tmp_path: Path) -> None:
    target = str(tmp_path / "target.db")
    first = import_archive(archive, store=target)
    before = counts(target)

    again = import_archive(archive, store=target)

    assert [r.pathspec for r in again] == [r.pathspec for r in first]
    assert [r.uid for r in again] == [r.uid for r in first]
    assert counts(target) == before
    # and into the store the runs came from: they are all there already
    before = counts(source)
    back = import_archive(archive, store=source)
    assert [r.pathspec for r in back] == list(PATHSPECS)
    assert all(r.imported_from is None for r in back)
    assert counts(source) == before


def test_values_are_stored_once(source: str, tmp_path: Path) -> None:
    one, two = tmp_path / "one.afa", tmp_path / "two.afa"
    run_of(source, "ShareFlow/1").export(one)
    run_of(source, "ShareFlow/2").export(two)
    in_one, in_two = shas(str(one)), shas(str(two))
    assert in_one & in_two and in_two - in_one  # values in common, and values of its own
    target = str(tmp_path / "target.db")

    import_archive(one, store=target)
    assert shas(target) == in_one and counts(target)["blobs"] == len(in_one)
    import_archive(two, store=target)

    assert shas(target) == in_one | in_two
    assert counts(target)["blobs"] == len(in_one | in_two) < len(in_one) + len(in_two)
    chunks = query(target, "SELECT sum(nchunks) FROM blobs")[0][0]
    assert counts(target)["blob_chunks"] == chunks > 0

    # against values of the target's own runs too: the same run, made there, shares them all
    mine = str(tmp_path / "mine.db")
    anyio.run(lambda: af.ShareFlow(store=mine, echo=False).run())
    have = shas(mine)
    assert in_two <= have
    [copied] = import_archive(two, store=mine)
    assert copied.id == "2" and shas(mine) == have and counts(mine)["blobs"] == len(have)


def test_import_of_a_changed_value_fails_and_changes_nothing(archive: str, tmp_path: Path) -> None:
    # One byte of a chunked value (the 2.4 MB array) changed after export; the records and
    # the digest are left alone, as a bit flip on a disk or a careless edit leaves them.
    with contextlib.closing(sqlite3.connect(archive)) as conn, conn:
        (sha, data) = conn.execute(
            "SELECT sha, data FROM blob_chunks WHERE idx = 1 ORDER BY sha LIMIT 1"
        ).fetchone()
        flipped = bytes([data[100] ^ 0xFF])
        conn.execute(
            "UPDATE blob_chunks SET data = ? WHERE sha = ? AND idx = 1",
            (data[:100] + flipped + data[101:], sha),
        )
    target = str(tmp_path / "target.db")
    anyio.run(lambda: af.Resumable(store=target, echo=False).run())
    before = counts(target)

    with pytest.raises(StoreError, match="does not match its hash") as info:
        import_archive(archive, store=target)
    assert archive in str(info.value) and "fresh copy" in str(info.value)

    assert counts(target) == before
    assert integrity(target) == ["ok"]
    assert read_archive(archive).runs  # the manifest still reads ...
    with pytest.raises(StoreError, match="does not match its hash"):
        read_archive(archive, verify=True)  # ... but the full check finds the change
    start = run_of(archive, "ShareFlow/1")["start"].task
    assert start.data.items == [1, 2, 3]  # other values read in place
    with pytest.raises(StoreError, match="do not match its hash"):
        _ = start.data.chunky  # the changed one is refused, never returned


def test_an_import_failing_midway_changes_nothing(
    archive: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = str(tmp_path / "target.db")
    anyio.run(lambda: af.Resumable(store=target, echo=False).run())
    # The copy fails once every row is in: a trusted import signs the new runs' pickles last,
    # and only then reads the key, here a file others may read (refused). Everything must go.
    key = tmp_path / "open-key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o644)
    monkeypatch.setenv("ASYNCFLOW_KEY_FILE", str(key))
    before = counts(target)
    with pytest.raises(StoreError, match="is not private") as info:
        import_archive(archive, store=target, trust=True)
    assert str(key) in str(info.value)
    assert counts(target) == before
    assert integrity(target) == ["ok"]
    key.chmod(0o600)
    assert len(import_archive(archive, store=target, trust=True)) == 4


def test_import_needs_an_archive_and_a_store(source: str, archive: str, tmp_path: Path) -> None:
    other = tmp_path / "other.afa"
    run_of(source, "Resumable/3").export(other)
    before = other.read_bytes()
    with pytest.raises(StoreError, match="is a run archive, which is read-only"):
        import_archive(archive, store=other)
    assert other.read_bytes() == before
    with pytest.raises(StoreFormatError, match="not a run archive") as info:
        import_archive(source, store=tmp_path / "target.db")
    assert source in str(info.value) and "asyncflow export" in str(info.value)
    with pytest.raises(StoreError, match="there is no archive at"):
        import_archive(tmp_path / "nowhere.afa", store=tmp_path / "target.db")
    assert not (tmp_path / "target.db").exists()


def test_a_resumed_run_keeps_its_origin_when_both_travel(source: str, tmp_path: Path) -> None:
    both = tmp_path / "both.afa"
    export_runs(both, [run_of(source, "Resumable/3"), run_of(source, "Resumable/4")])
    target = str(tmp_path / "target.db")
    anyio.run(lambda: af.ShareFlow(store=target, echo=False).run())  # takes id 1

    origin, resumed = import_archive(both, store=target)

    assert (origin.id, resumed.id) == ("2", "3")
    assert resumed.origin_run_id == origin.id and origin.origin_run_id is None
    assert (
        resumed["start"].task.origin_task_id
        == run_of(source, "Resumable/4")["start"].task.origin_task_id
    )
    assert resumed.data.total == run_of(source, "Resumable/4").data.total

    # alone, it arrives without an origin in the target; the old id is kept as provenance
    alone = tmp_path / "alone.afa"
    run_of(source, "Resumable/4").export(alone)
    [lone] = import_archive(alone, store=tmp_path / "fresh.db")
    assert lone.origin_run_id is None
    assert lone.imported_from is not None and lone.imported_from["origin_run_id"] == 3
    assert snapshot(lone) == snapshot(run_of(source, "Resumable/4"))  # cloned values came too


def test_an_imported_failed_run_resumes_on_another_machine(source: str, tmp_path: Path) -> None:
    failed = tmp_path / "failed.afa"
    run_of(source, "Resumable/3").export(failed)
    here = tmp_path / "here"
    here.mkdir()
    anyio.run(lambda: af.Resumable(store=str(here / "target.db"), echo=False).run())
    [imported] = import_archive(failed, store=here / "target.db")
    assert (imported.id, imported.status) == ("2", "failed")
    # "another machine": a copy of the store elsewhere, another user's key and home
    there = tmp_path / "there"
    there.mkdir()
    store = copy_store(str(here / "target.db"), there / "target.db")
    env = {k: v for k, v in os.environ.items() if k != af.FAIL_VARIABLE}
    env |= {
        "HOME": str(there),
        "ASYNCFLOW_KEY_FILE": str(there / "key"),
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [
            sys.executable,
            str(FLOWS_FILE),
            "Resumable",
            "resume",
            "--origin-run-id",
            "2",
            "--store",
            store,
            "--quiet",
        ],
        capture_output=True,
        text=True,
        cwd=there,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr

    resumed = Flow("Resumable", store=store).latest_run
    assert resumed is not None and resumed.id == "3" and resumed.successful
    assert resumed.origin_run_id == "2"
    origin = run_of(store, "Resumable/2")
    assert resumed["start"].task.origin_task_id == origin["start"].task.id  # cloned ...
    assert resumed["start"].task.stdout == "start ran\n"
    for name in ("base", "words"):
        assert resumed["start"].task[name].sha == origin["start"].task[name].sha  # by reference
    assert resumed["middle"].task.origin_task_id is None  # ... and the failed step ran there
    assert resumed["middle"].task.data.host_pid != os.getpid()
    assert resumed.data.total == 45.0 + 2 + 90.0
    assert resumed.parameters == {"scale": 3}
    assert (there / "key").exists()  # that machine's user signed what it wrote


# --- large values -----------------------------------------------------------------------------

# The child exports a run, then imports the archive, and reports what its memory (KiB) was
# before and at its peak during each. Two measures, from /proc/self/status:
# - VmHWM, the kernel's high-water mark of the process's resident set (ru_maxrss would start at
#   the size of the forking test process). It counts file pages mapped by SQLite's mmap too:
#   an import, which reads the archive through mmap, maps it whole; those pages are the page
#   cache, which the kernel drops at will, not memory the process holds.
# - RssAnon, the process's own (anonymous) memory, sampled every 2 ms while the work runs.
MEMORY_CHILD = r"""
import json, sys, threading
from asyncflow import Flow, import_archive

def status(field):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))

def sampled(work):
    top, stop = [status("RssAnon")], threading.Event()
    def sample():
        while not stop.wait(0.002):
            top.append(status("RssAnon"))
    thread = threading.Thread(target=sample)
    thread.start()
    try:
        work()
    finally:
        stop.set()
        thread.join()
    return max(top)

store, archive, target = sys.argv[1:4]
run = Flow("Big", store=store).latest_run
seen = {"hwm": status("VmHWM"), "anon": status("RssAnon")}
seen["export_anon"] = sampled(lambda: run.export(archive))
seen["export_hwm"] = status("VmHWM")
seen["import_anon"] = sampled(lambda: import_archive(archive, store=target))
print(json.dumps(seen))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_a_large_value_is_not_held_in_memory(tmp_path: Path) -> None:
    mib = 96
    store = str(tmp_path / "big.db")
    anyio.run(lambda: af.Big(store=store, echo=False).run(mib=mib))
    archive, target = tmp_path / "big.afa", tmp_path / "target.db"
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_CHILD, store, str(archive), str(target)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    # Generous bounds: values go file to file through SQLite, so memory grows by a constant
    # (about 36 MiB measured here, whatever the value's size); holding the value once in
    # memory would add its whole size, which is the bound.
    limit = mib * 1024
    assert seen["export_hwm"] - seen["hwm"] < limit, seen
    assert seen["export_anon"] - seen["anon"] < limit, seen
    assert seen["import_anon"] - seen["anon"] < limit, seen
    assert read_archive(archive).payload_bytes > mib << 20
    array = Flow("Big", store=str(target)).latest_run["start"].task.data.array
    assert array.nbytes == mib << 20 and array.dtype == np.uint8


# --- awaitable twins ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_awaitable_twins(source: str, tmp_path: Path) -> None:
    ticks: list[float] = []
    stop = anyio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            ticks.append(time.monotonic())
            await anyio.sleep(0.005)

    async with Flow.aopen("ShareFlow", store=source) as flow:
        runs = await flow.aruns()
        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            one = await runs[0].aexport(tmp_path / "one.afa")
            both = await aexport_runs(tmp_path / "both.afa", runs)
            imported = await aimport_archive(tmp_path / "both.afa", store=tmp_path / "t.db")
            info = await aread_archive(tmp_path / "both.afa", verify=True)
            stop.set()
    assert isinstance(one, ArchiveManifest) and one.runs == ("ShareFlow/2",)
    assert both == info and both.runs == ("ShareFlow/1", "ShareFlow/2")
    assert [r.pathspec for r in imported] == ["ShareFlow/1", "ShareFlow/2"]
    assert_archive_holds(source, str(tmp_path / "both.afa"), [1, 2])
    assert len(ticks) >= 3  # the loop went on while the work ran in threads


# --- stopping a long export or import -------------------------------------------------------


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store with one run holding a 96 MiB array (an export or import of it takes a while)."""
    store = str(tmp_path_factory.mktemp("big") / "big.db")
    anyio.run(lambda: af.Big(store=store, echo=False).run(mib=96))
    return store


def test_a_stopped_export_or_import_leaves_nothing(big_store: str, tmp_path: Path) -> None:
    import threading

    from asyncflow._store import _archive as store_archive

    stop = threading.Event()
    stop.set()
    dest = tmp_path / "big.afa"
    with pytest.raises(StoreError, match="interrupted"):
        store_archive.export_archive(big_store, str(dest), [("Big", 1)], stop=stop)
    assert sorted(os.listdir(tmp_path)) == []  # neither the archive nor its temporary file

    run_of(big_store, "Big/1").export(dest)
    target = str(tmp_path / "target.db")
    Flow("Big", big_store).close()
    before = counts(big_store)
    with pytest.raises(StoreError, match="interrupted"):
        store_archive.import_archive(str(dest), big_store, stop=stop)
    with pytest.raises(StoreError, match="interrupted"):
        store_archive.import_archive(str(dest), target, stop=stop)
    assert counts(big_store) == before
    assert integrity(big_store) == ["ok"]


@pytest.mark.anyio
async def test_cancelling_an_export_or_import_stops_it_cleanly(
    big_store: str, tmp_path: Path
) -> None:
    run = await (await Flow.aopen("Big", big_store)).aget("1")
    dest = tmp_path / "big.afa"
    with anyio.move_on_after(0.05) as scope:
        await run.aexport(dest)
    assert scope.cancelled_caught  # the cancellation went through
    # Stopped part-way (nothing there), or finished just before the stop: a whole archive.
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    if dest.exists():
        assert (await asyncflow.aread_archive(dest, verify=True)).runs == ("Big/1",)
    else:
        await run.aexport(dest)

    target = str(tmp_path / "target.db")
    with anyio.move_on_after(0.05) as scope:
        await aimport_archive(dest, target)
    assert scope.cancelled_caught
    if os.path.exists(target):
        assert integrity(target) == ["ok"]
        runs = query(target, "SELECT count(*) FROM runs")[0][0]
        tasks = query(target, "SELECT count(*) FROM tasks")[0][0]
        assert (runs, tasks) in ((0, 0), (1, 2))  # nothing, or the whole run
