"""Keeping the store tidy: tags on existing runs, gc, stats (Python, awaitable and CLI forms).

Every test works on real store files. gc is checked for what it must never do: delete a
value a remaining run needs (read back afterwards, a resumed run's clones included), touch
a live run (paused in this process, or running in a child process), or change anything in
a dry run; and for what it must do: delete the selected runs with all their rows, delete
the values nothing else references, and give the space back to the file system.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest

import asyncflow
from asyncflow import (
    Flow,
    GcReport,
    NotFoundError,
    Run,
    StepFailed,
    StoreError,
    StoreStats,
    UsageError,
)
from asyncflow._cli import main as cli_main
from asyncflow._client._tidy import parse_age
from asyncflow._store._lease import LEASE_ENV, host_name
from tests._storefixture import T0, T, execute, write_run
from tests.flows import tidy as tidy_flows
from tests.flows.tidy import FAILING, GATES, SHARED, Gate, SharedFlow, own_value

FLOW_FILE = tidy_flows.__file__

# --- helpers ---------------------------------------------------------------------------------


def query(store: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(store, timeout=30)) as conn:
        return conn.execute(sql, params).fetchall()


def count(store: str, table: str) -> int:
    return int(query(store, f"SELECT count(*) FROM {table}")[0][0])


def assert_whole(store: str) -> None:
    """The file is intact and no row names a value that is not stored."""
    assert query(store, "PRAGMA integrity_check") == [("ok",)]
    dangling = (
        "SELECT count(*) FROM (SELECT sha FROM artifacts UNION ALL SELECT sha FROM run_params "
        "UNION ALL SELECT source_sha FROM runs WHERE source_sha IS NOT NULL) "
        "WHERE sha NOT IN (SELECT sha FROM blobs)"
    )
    assert query(store, dangling) == [(0,)]
    chunks = "SELECT count(*) FROM blob_chunks WHERE sha NOT IN (SELECT sha FROM blobs)"
    assert query(store, chunks) == [(0,)]
    for table in ("run_tags", "run_params", "tasks", "attempts", "artifacts"):
        orphans = f"SELECT count(*) FROM {table} WHERE run_id NOT IN (SELECT id FROM runs)"
        assert query(store, orphans) == [(0,)], table


def read_everything(store: str) -> dict[str, dict[str, Any]]:
    """Every run's parameters and every task's artifacts, loaded: pathspec -> values."""
    out: dict[str, dict[str, Any]] = {}
    for name in asyncflow.list_flows(store):
        with Flow(name, store) as flow:
            for run in flow:
                out[run.pathspec] = dict(run.parameters)
                for step_ in run:
                    for task in step_:
                        out[task.pathspec] = {art.name: art.data for art in task}
    return out


def file_digest(store: str) -> tuple[str, bool]:
    with open(store, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest(), os.path.exists(store + "-wal")


async def shared_run(store: str, key: str, *, tags: tuple[str, ...] = (), size: int = 1000) -> Run:
    return await SharedFlow(store=store, echo=False, tags=tags).run(key=key, size=size)


def cli(capsys: pytest.CaptureFixture[str], *argv: str, code: int = 0) -> str:
    got = cli_main(list(argv))
    out, err = capsys.readouterr()
    assert got == code, err
    return out if code == 0 else err


def make_archive(store: str, pathspec: str = "") -> str:
    """A run archive of one run of ``store`` (its latest, unless ``Flow/run`` is given)."""
    path = str(Path(store).with_name("runs.afa"))
    flow, _, run_id = pathspec.partition("/")
    with Flow(flow or asyncflow.list_flows(store)[0], store) as found:
        run = found[run_id] if run_id else found.latest_run
        assert run is not None
        asyncflow.export_runs(path, [run])
    return path


@contextmanager
def gate(key: str) -> Iterator[Gate]:
    GATES[key] = found = Gate()
    try:
        yield found
    finally:
        found.release.set()
        del GATES[key]


# --- tags ------------------------------------------------------------------------------------


def test_add_and_remove_tags_show_on_the_run_and_in_flow_runs(store: str) -> None:
    first = write_run(store, "TagFlow", [T("start")], tags=["nightly"])
    second = write_run(store, "TagFlow", [T("start")])
    with Flow("TagFlow", store) as flow:
        run = flow[second]
        run.add_tag("keep", "exp", "keep")
        assert run.tags == frozenset({"keep", "exp"})
        assert [r.id for r in flow.runs(tag="keep")] == [str(second)]
        assert [r.id for r in flow.runs("keep", "exp")] == [str(second)]
        run.remove_tag("exp", "never-had-it")
        assert run.tags == frozenset({"keep"})
        assert flow.runs(tag="exp") == []
        # Tags go exactly as FlowSpec(tags=...) takes them: one string is one tag.
        run.add_tag("one string")
        assert "one string" in run.tags
        flow[first].add_tag("keep")
        assert [r.id for r in flow.runs(tag="keep")] == [str(second), str(first)]
    with Flow("TagFlow", store) as fresh:
        assert fresh[second].tags == frozenset({"keep", "one string"})
        assert fresh[first].tags == frozenset({"nightly", "keep"})


@pytest.mark.anyio
async def test_the_awaitable_twins_tag_without_blocking(store: str) -> None:
    run = await shared_run(store, "a", tags=("nightly",))
    await run.aadd_tag("best", "nightly")
    assert run.tags == frozenset({"nightly", "best"})
    flow = await Flow.aopen("SharedFlow", store)
    assert [r.id for r in await flow.aruns(tag="best")] == [run.id]
    await run.aremove_tag("nightly", "best")
    assert run.tags == frozenset()
    assert (await flow.aget(run.id)).tags == frozenset()
    assert await flow.aruns(tag="nightly") == []


def test_flowspec_tags_and_add_tag_share_one_rule(store: str) -> None:
    # A single string is one tag, non-strings are converted, duplicates kept once.
    spec = SharedFlow(store=store, tags="solo")
    assert spec._af_options.tags == ("solo",)
    assert SharedFlow(store=store, tags=["b", "a", "b"])._af_options.tags == ("b", "a")
    run_id = write_run(store, "TagFlow", [T("start")])
    with Flow("TagFlow", store) as flow:
        run = flow[run_id]
        run.add_tag(7)  # type: ignore[arg-type]
        assert run.tags == frozenset({"7"})


def test_tagging_a_run_gc_deleted_says_it_is_gone(store: str) -> None:
    keep = write_run(store, "TagFlow", [T("start")])
    gone = write_run(store, "TagFlow", [T("start")], tags=["scratch"])
    with Flow("TagFlow", store) as flow:
        run = flow[gone]
        asyncflow.gc(store, tag="scratch")
        with pytest.raises(NotFoundError) as info:
            run.add_tag("late")
        assert f"run TagFlow/{gone} was deleted from the store" in str(info.value)
        assert str(keep) in str(info.value)
    assert query(store, "SELECT count(*) FROM run_tags WHERE tag = 'late'") == [(0,)]


def test_a_run_gc_deleted_is_reported_as_deleted_by_gc(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    gone = write_run(store, "F", [T("start")])
    kept = write_run(store, "F", [T("start")])
    other = write_run(store, "G", [T("start")])
    asyncflow.gc(store, keep_last=1)
    said = f"run F/{gone} was deleted from the store {store!r} by asyncflow gc on "
    with pytest.raises(NotFoundError, match=re.escape(said)) as info:
        Flow("F", store)[gone]
    assert f"newest first: {kept}." in str(info.value)
    err = cli(capsys, "show", f"F/{gone}", "--store", store, code=2)
    assert said.replace(repr(store), repr(os.path.abspath(store))) in err or said in err
    # Another flow's id, or an id never given out, is just not there.
    with pytest.raises(NotFoundError, match=f"flow F has no run {other} in the store"):
        Flow("F", store)[other]
    with pytest.raises(NotFoundError, match="flow F has no run 99 in the store"):
        Flow("F", store)[99]
    # The note is one small row in store_info per deleted run.
    assert query(store, "SELECT key FROM store_info WHERE key LIKE 'gc_deleted:%'") == [
        (f"gc_deleted:{gone}",)
    ]


def test_a_run_archive_is_not_tagged(store: str) -> None:
    run_id = write_run(store, "TagFlow", [T("start")])
    archive = make_archive(store)
    before = file_digest(archive)
    with (
        Flow("TagFlow", archive) as flow,
        pytest.raises(StoreError, match="run archive, which is read-only"),
    ):
        flow[run_id].add_tag("x")
    assert file_digest(archive) == before


def test_the_tag_command(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = write_run(store, "TagFlow", [T("start")], tags=["old"])
    out = cli(capsys, "tag", f"TagFlow/{run_id}", "a", "b", "--store", store)
    assert out.strip() == f"TagFlow/{run_id} tags: a, b, old"
    out = cli(capsys, "tag", f"TagFlow/{run_id}", "old", "a", "--remove", "--store", store)
    assert out.strip() == f"TagFlow/{run_id} tags: b"
    out = cli(capsys, "runs", "TagFlow", "--tag", "b", "--store", store)
    assert out.splitlines()[1].split()[1] == str(run_id)
    err = cli(capsys, "tag", "TagFlow", "x", "--store", store, code=2)
    assert "bad pathspec 'TagFlow': expected Flow/run" in err


# --- gc: arguments ---------------------------------------------------------------------------


def test_gc_needs_a_criterion_and_checks_each(store: str) -> None:
    write_run(store, "F", [T("start")])
    with pytest.raises(UsageError, match="at least one of keep_last, older_than or tag"):
        asyncflow.gc(store)
    with pytest.raises(UsageError, match="at least one of keep_last"):
        asyncflow.gc(store, flow="F", dry_run=True)
    for bad in (0, -1, 1.5, True, "3"):
        with pytest.raises(UsageError, match="must be a whole number >= 1") as info:
            asyncflow.gc(store, keep_last=bad)  # type: ignore[arg-type]
        assert info.value.argument == "keep_last"
    for age in ("soon", "-3d", "3x", "", float("inf"), -1, timedelta(seconds=-1), [1]):
        with pytest.raises(UsageError, match="is not an age") as info:
            asyncflow.gc(store, older_than=age)  # type: ignore[arg-type]
        assert info.value.argument == "older_than"
    assert count(store, "runs") == 1
    with pytest.raises(NotFoundError, match="there is no flow 'G'"):
        asyncflow.gc(store, flow="G", keep_last=1)
    with pytest.raises(StoreError, match="there is no store at"):
        asyncflow.gc(str(Path(store).with_name("missing.db")), keep_last=1)
    assert not Path(store).with_name("missing.db").exists()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90.0),
        ("90s", 90.0),
        ("30m", 1800.0),
        ("12h", 43200.0),
        ("7d", 604800.0),
        ("2w", 1209600.0),
        (" 1.5H ", 5400.0),
        (timedelta(days=1), 86400.0),
        (0, 0.0),
        (2.5, 2.5),
    ],
)
def test_ages(text: Any, seconds: float) -> None:
    assert parse_age(text) == seconds


# --- gc: which runs ---------------------------------------------------------------------------


def test_keep_last_keeps_each_flows_newest_runs(store: str) -> None:
    ids = {flow: [write_run(store, flow, [T("start", artifacts={"x": i})]) for i in range(3)]
           for flow in ("A", "B")}  # fmt: skip
    report = asyncflow.gc(store, keep_last=1)
    assert isinstance(report, GcReport) and not report.dry_run
    gone = [f"A/{ids['A'][0]}", f"A/{ids['A'][1]}", f"B/{ids['B'][0]}", f"B/{ids['B'][1]}"]
    assert sorted(report.deleted) == sorted(gone)
    assert report.skipped == ()
    assert [r.id for r in Flow("A", store).runs()] == [str(ids["A"][2])]
    assert [r.id for r in Flow("B", store).runs()] == [str(ids["B"][2])]
    # x=0 and x=1 went; x=2 stays (both flows share it).
    assert report.blobs_deleted == 2
    assert Flow("A", store).latest_run["start"].data.x == 2  # type: ignore[index]
    assert_whole(store)


def test_criteria_combine_and_flow_limits(store: str) -> None:
    old = time.time() - 10 * 86400
    a_old = write_run(store, "A", [T("start")], created_at=old, tags=["scratch"])
    a_old2 = write_run(store, "A", [T("start")], created_at=old)
    a_new = write_run(store, "A", [T("start")], created_at=time.time(), tags=["scratch"])
    b_old = write_run(store, "B", [T("start")], created_at=old, tags=["scratch"])
    # older than a week AND tagged scratch, in flow A only
    report = asyncflow.gc(store, flow="A", older_than="1w", tag="scratch")
    assert report.deleted == (f"A/{a_old}",)
    remaining = {r.id for r in Flow("A", store).runs()}
    assert remaining == {str(a_old2), str(a_new)}
    assert Flow("B", store)[b_old].status == "succeeded"
    # older than 5 days (a timedelta), any flow
    report = asyncflow.gc(store, older_than=timedelta(days=5))
    assert sorted(report.deleted) == sorted([f"A/{a_old2}", f"B/{b_old}"])
    # a tag alone: every tagged run
    report = asyncflow.gc(store, tag="scratch")
    assert report.deleted == (f"A/{a_new}",)
    assert asyncflow.list_flows(store) == []
    assert_whole(store)


def test_gc_never_deletes_a_run_tagged_keep(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    kept = write_run(store, "F", [T("start", artifacts={"x": 0})], tags=["keep", "scratch"])
    other = write_run(store, "F", [T("start", artifacts={"x": 1})], tags=["scratch"])
    write_run(store, "F", [T("start", artifacts={"x": 2})])
    why = "tagged 'keep', a protected tag"
    # Whatever selects it, even tag="keep" itself, the run tagged keep stays.
    for criteria in ({"keep_last": 1}, {"older_than": 0}, {"tag": "keep"}, {"tag": "scratch"}):
        report = asyncflow.gc(store, dry_run=True, **criteria)  # type: ignore[arg-type]
        assert f"F/{kept}" not in report.deleted and f"F/{kept}" in report.skipped, criteria
        assert report.skipped_why[f"F/{kept}"] == why
    report = asyncflow.gc(store, tag="keep")
    assert report.deleted == () and report.skipped == (f"F/{kept}",)
    report = asyncflow.gc(store, older_than=0)
    assert f"F/{kept}" not in report.deleted and f"F/{other}" in report.deleted
    assert Flow("F", store)[kept]["start"].data.x == 0
    out = cli(capsys, "gc", "--older-than", "0", "--dry-run", "--store", store)
    assert f"  F/{kept} ({why})" in out.splitlines()
    # Other tags can be protected instead (replacing the default), or none at all.
    paper = write_run(store, "F", [T("start")], tags=["paper"])
    report = asyncflow.gc(store, older_than=0, protect=("paper",), dry_run=True)
    assert report.deleted == (f"F/{kept}",) and report.skipped == (f"F/{paper}",)
    out = cli(capsys, "gc", "--older-than", "0", "--protect", "paper", "--protect", "keep",
              "--store", store)  # fmt: skip
    assert out.startswith("Deleted 0 runs")
    with pytest.raises(UsageError, match="protect=5 is not a list of tags"):
        asyncflow.gc(store, older_than=0, protect=5)  # type: ignore[arg-type]
    assert asyncflow.gc(store, older_than=0, protect=()).deleted == (f"F/{kept}", f"F/{paper}")
    assert_whole(store)


def test_keep_last_zero_is_refused_so_gc_never_deletes_every_run(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(2):
        write_run(store, "F", [T("start")])
    with pytest.raises(UsageError, match="keep_last=0 must be a whole number >= 1"):
        asyncflow.gc(store, keep_last=0)
    err = cli(capsys, "gc", "--keep-last", "0", "--store", store, code=2)
    assert "keep_last=0 must be a whole number >= 1" in err
    assert count(store, "runs") == 2
    assert asyncflow.gc(store, keep_last=1).deleted == ("F/1",)


def test_every_row_of_a_deleted_run_goes(store: str) -> None:
    gone = write_run(
        store,
        "F",
        [T("start", artifacts={"a": [1, 2]}, stdout="hi\n"), T("end", status="failed")],
        tags=["x", "y"],
        params={"alpha": 0.5},
        status="failed",
    )
    execute(
        store,
        "INSERT INTO attempts (run_id, task_id, attempt, status, started_at, finished_at) "
        "VALUES (?, 2, 0, 'failed', 1, 2)",
        (gone,),
    )
    kept = write_run(store, "F", [T("start", artifacts={"b": 3})], params={"alpha": 0.5})
    asyncflow.gc(store, keep_last=1)
    for table, column in [
        ("runs", "id"),
        ("run_tags", "run_id"),
        ("run_params", "run_id"),
        ("tasks", "run_id"),
        ("attempts", "run_id"),
        ("artifacts", "run_id"),
    ]:
        assert query(store, f"SELECT count(*) FROM {table} WHERE {column} = ?", (gone,)) == [(0,)]
    # The parameter value is shared with the kept run: it stays.
    assert Flow("F", store)[kept].parameters == {"alpha": 0.5}
    assert count(store, "blobs") == 2  # alpha and b; [1, 2] went
    # Run ids are never reused (a deleted run's pathspec never names another run).
    again = write_run(store, "F", [T("start")])
    assert again > kept
    assert_whole(store)


# --- gc: what remains reads back ----------------------------------------------------------------


@pytest.mark.anyio
async def test_gc_keeps_every_value_a_remaining_run_needs_even_a_deleted_origins(
    store: str,
) -> None:
    await shared_run(store, "k1", tags=("doomed",))
    await shared_run(store, "k2", tags=("doomed",))
    k3 = await shared_run(store, "k3")
    FAILING.add("k5")
    try:
        with pytest.raises(StepFailed):
            await shared_run(store, "k5", tags=("doomed",))
    finally:
        FAILING.discard("k5")
    origin = Flow("SharedFlow", store).latest_run
    assert origin is not None and origin.status == "failed"
    resumed = await SharedFlow(store=store, echo=False).resume()
    assert resumed.successful and resumed.origin_run_id == origin.id
    # The resumed run cloned start (own, shared) and reuses the origin's parameters, by sha.
    blobs_before = count(store, "blobs")
    report = await asyncflow.agc(store, tag="doomed")
    assert sorted(report.deleted) == sorted(f"SharedFlow/{i}" for i in ("1", "2", origin.id))
    # k1's and k2's own arrays, totals and parameter values went; k5's stay for the resume.
    assert report.blobs_deleted == 6 and count(store, "blobs") == blobs_before - 6
    assert report.bytes_freed > 2 * 8000
    assert_whole(store)
    values = read_everything(store)
    assert values[resumed.pathspec] == {"key": "k5", "size": 1000}
    start = values[f"{resumed.pathspec}/start/{resumed['start'].task.id}"]
    assert start["shared"] == SHARED
    assert np.array_equal(start["own"], own_value("k5", 1000))
    assert resumed.data.total == float(own_value("k5", 1000).sum())
    assert np.array_equal(k3["start"].data.own, own_value("k3", 1000))
    assert {k for k in values if k.count("/") == 1} == {k3.pathspec, resumed.pathspec}


@pytest.mark.anyio
async def test_gc_next_to_a_live_run_leaves_it_whole(store: str) -> None:
    old = [await shared_run(store, f"old{i}") for i in range(3)]
    with gate("live") as paused:
        async with anyio.create_task_group() as tg:
            result: list[Run] = []

            async def live() -> None:
                result.append(await shared_run(store, "live"))

            tg.start_soon(live)
            with anyio.fail_after(30):
                await paused.entered.wait()
            # Every run of the flow is selected; the live one must be skipped.
            dry = await asyncflow.agc(store, flow="SharedFlow", older_than=0, dry_run=True)
            report = await asyncflow.agc(store, flow="SharedFlow", older_than=0)
            assert dry.deleted == report.deleted == tuple(r.pathspec for r in old)
            (live_id,) = [r.id for r in Flow("SharedFlow", store).runs()]
            assert report.skipped == dry.skipped == (f"SharedFlow/{live_id}",)
            # "late" (set after the gate) was only the deleted runs' value: it went, and the
            # live run stores it again when its task commits.
            assert query(store, "SELECT count(*) FROM artifacts WHERE name = 'late'") == [(0,)]
            paused.release.set()
    run = result[0]
    assert run.successful and run.id == live_id
    assert run.data.late == SHARED + " (late)"
    assert run.data.total == float(own_value("live", 1000).sum())
    assert read_everything(store)[run.pathspec] == {"key": "live", "size": 1000}
    assert_whole(store)


@pytest.mark.anyio
async def test_the_origin_of_a_live_resume_is_kept(store: str) -> None:
    FAILING.add("o")
    try:
        with pytest.raises(StepFailed):
            await shared_run(store, "o", tags=("doomed",))
    finally:
        FAILING.discard("o")
    origin = Flow("SharedFlow", store).latest_run
    assert origin is not None
    with gate("o") as paused:
        async with anyio.create_task_group() as tg:
            result: list[Run] = []

            async def resume() -> None:
                result.append(await SharedFlow(store=store, echo=False).resume(origin.id))

            tg.start_soon(resume)
            with anyio.fail_after(30):
                await paused.entered.wait()
            report = await asyncflow.agc(store, tag="doomed")
            assert report.deleted == ()
            assert report.skipped == (origin.pathspec,)
            paused.release.set()
    assert result[0].successful
    # Finished, the resumed run holds its own references: now the origin may go.
    report = asyncflow.gc(store, tag="doomed")
    assert report.deleted == (origin.pathspec,)
    assert np.array_equal(result[0]["start"].data.own, own_value("o", 1000))
    assert_whole(store)


def test_a_resume_whose_origin_gc_deleted_meanwhile_is_refused(store: str) -> None:
    # What a resume's writer does if gc deleted the origin after the resume read it.
    from asyncflow._store._write_ops import CreateRun
    from asyncflow._store._writer import Writer

    write_run(store, "F", [T("start")])
    writer = Writer(store, lambda shas: None)
    try:
        create = CreateRun("F", "{}", time.time(), (), {}, origin_run_id=99)
        writer.submit(create)
        with pytest.raises(StoreError, match="cannot resume run F/99: it was deleted"):
            create.future.result(timeout=30)
    finally:
        writer.close()
    assert count(store, "runs") == 1


def test_gc_next_to_a_live_run_of_another_process(
    tmp_path: Path, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LEASE_ENV, "1.5")  # this process's gc and the child agree on it
    marker = tmp_path / "marker"
    env = {**os.environ, "TIDY_HANG_MARKER": str(marker)}
    proc = subprocess.Popen(
        [sys.executable, FLOW_FILE, "run", "--quiet", "--store", store, "--key", "child"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert marker.exists(), proc.stderr.read() if proc.poll() is not None else "timeout"
        time.sleep(3)  # twice the lease window: the child's writer keeps renewing it
        report = asyncflow.gc(store, older_than=0)
        assert report.deleted == () and report.skipped == ("SharedFlow/1",)
        assert report.skipped_why["SharedFlow/1"].startswith(f"live: running in process {proc.pid}")
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
    # Its process gone, the run is crashed; once its lease has expired too, it may go, with
    # every value it stored (gc never deletes a run whose lease is still unexpired).
    assert Flow("SharedFlow", store)["1"].status == "crashed"
    time.sleep(2)
    report = asyncflow.gc(store, older_than=0)
    assert report.deleted == ("SharedFlow/1",)
    assert count(store, "blobs") == 0 and count(store, "blob_chunks") == 0
    assert_whole(store)


# --- gc: the file ------------------------------------------------------------------------------


def test_a_dry_run_changes_nothing(store: str) -> None:
    for i in range(3):
        write_run(store, "F", [T("start", artifacts={"x": i, "big": bytes(2_000_000 + i)})])
    before = file_digest(store)
    report = asyncflow.gc(store, keep_last=1, dry_run=True)
    assert report.dry_run and report.deleted == ("F/1", "F/2")
    assert report.blobs_deleted == 4 and report.bytes_freed > 4_000_000
    assert report.size_after == report.size_before
    assert file_digest(store) == before
    real = asyncflow.gc(store, keep_last=1)
    assert (real.deleted, real.blobs_deleted, real.bytes_freed) == (
        report.deleted,
        report.blobs_deleted,
        report.bytes_freed,
    )


@pytest.mark.anyio
async def test_the_file_shrinks_after_a_large_artifacts_run_goes(store: str) -> None:
    await shared_run(store, "big", size=3_000_000)  # 24 MB of float64
    await shared_run(store, "small")
    assert query(store, "PRAGMA auto_vacuum") == [(2,)]  # new stores: incremental
    report = asyncflow.gc(store, keep_last=1)
    assert report.deleted == ("SharedFlow/1",)
    assert report.bytes_freed >= 24_000_000
    assert report.size_before > 24_000_000
    assert report.size_after < 2_000_000 and report.note is None
    assert os.path.getsize(store) == report.size_after
    assert_whole(store)
    assert read_everything(store)["SharedFlow/2"] == {"key": "small", "size": 1000}


def test_an_older_store_without_auto_vacuum_is_compacted_and_switched(store: str) -> None:
    for i in range(2):
        write_run(store, "F", [T("start", artifacts={"big": bytes(5_000_000 + i)})])
    with closing(sqlite3.connect(store, isolation_level=None)) as conn:
        conn.execute("PRAGMA auto_vacuum = NONE")
        conn.execute("VACUUM")  # as stores were made before auto_vacuum
        assert conn.execute("PRAGMA auto_vacuum").fetchone() == (0,)
    report = asyncflow.gc(store, keep_last=1)
    assert report.size_after < report.size_before - 4_000_000
    assert query(store, "PRAGMA auto_vacuum") == [(2,)]
    assert Flow("F", store)["2"]["start"].data.big == bytes(5_000_001)
    assert_whole(store)


def test_a_reader_holding_the_file_delays_the_shrink_and_says_so(store: str) -> None:
    for i in range(2):
        write_run(store, "F", [T("start", artifacts={"big": bytes(3_000_000 + i)})])
    with closing(sqlite3.connect(store, isolation_level=None)) as reader:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM runs").fetchone()
        report = asyncflow.gc(store, keep_last=1)
        reader.execute("ROLLBACK")
    assert report.deleted == ("F/1",)
    assert report.note is not None and "shrinks at a later checkpoint" in report.note
    assert_whole(store)


def test_gc_refuses_a_run_archive(store: str) -> None:
    write_run(store, "F", [T("start")])
    write_run(store, "F", [T("start")])
    archive = make_archive(store)
    before = file_digest(archive)
    with pytest.raises(StoreError, match="run archive, which is read-only"):
        asyncflow.gc(archive, keep_last=1)
    assert file_digest(archive) == before


def test_the_gc_command(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(3):
        write_run(store, "F", [T("start", artifacts={"x": i})], created_at=T0 + i)
    out = cli(capsys, "gc", "--keep-last", "1", "--dry-run", "--store", store)
    assert out.splitlines() == [
        f"Would delete 2 runs and 2 stored values (2 B) from {os.path.abspath(store)}:",
        "  F/1",
        "  F/2",
    ]
    assert count(store, "runs") == 3
    out = cli(capsys, "gc", "--older-than", "1d", "--flow", "F", "--store", store)
    lines = out.splitlines()
    assert lines[0] == f"Deleted 3 runs and 3 stored values (3 B) from {os.path.abspath(store)}."
    assert lines[1].startswith("File size: ")
    err = cli(capsys, "gc", "--store", store, code=2)
    assert err.startswith("asyncflow: error: gc needs at least one of") and err.count("\n") == 1
    err = cli(capsys, "gc", "--older-than", "soon", "--store", store, code=2)
    assert "older_than='soon' is not an age" in err


# --- stats -----------------------------------------------------------------------------------


def test_stats_counts_runs_values_and_bytes(store: str) -> None:
    same = list(range(1000))
    write_run(store, "A", [T("start", artifacts={"v": same, "w": 1}), T("end")])
    write_run(store, "A", [T("start", artifacts={"v": same, "w": 2})], status="failed")
    write_run(store, "B", [T("start", artifacts={"v": same})], params={"p": "x"})
    dead = write_run(store, "B", [T("start")], status="running", finished_at=None)
    execute(
        store,
        "UPDATE runs SET owner_pid = ?, owner_host = ?, heartbeat_at = ? WHERE id = ?",
        (2**22 + 12345, host_name(), time.time(), dead),  # no such process
    )
    found = asyncflow.stats(store)
    assert isinstance(found, StoreStats)
    assert found.store == os.path.abspath(store)
    assert (found.flows, found.total_runs) == (2, 4)
    assert found.runs == {"crashed": 1, "failed": 1, "succeeded": 2}
    assert (found.tasks, found.artifacts) == (5, 5)
    assert found.blobs == 4  # same, 1, 2, "x"
    v_size = query(store, "SELECT size FROM blobs WHERE size > 100")[0][0]
    assert found.stored_bytes == v_size + 1 + 1 + 2  # msgpack: 1 and 2 a byte each, "x" two
    assert found.referenced_bytes == 3 * v_size + 1 + 1 + 2
    assert found.dedup_ratio == pytest.approx(found.referenced_bytes / found.stored_bytes)
    assert found.dedup_ratio > 2.5
    assert found.file_bytes == os.path.getsize(store) + (
        os.path.getsize(store + "-wal") if os.path.exists(store + "-wal") else 0
    )
    assert found.archive is None
    # Deleting a large value by hand leaves free pages inside the file: reclaimable by gc,
    # which then gives them back (with a criterion that selects no run at all).
    write_run(store, "C", [T("start", artifacts={"big": bytes(1_000_000)})])
    execute(store, "DELETE FROM blobs WHERE size > 100000")
    assert asyncflow.stats(store).reclaimable_bytes >= 900_000
    report = asyncflow.gc(store, tag="no run has this tag")
    assert report.deleted == () and report.blobs_deleted == 0
    assert report.size_after < report.size_before
    assert asyncflow.stats(store).reclaimable_bytes == 0


@pytest.mark.anyio
async def test_astats_and_a_fresh_store(store: str) -> None:
    run = await shared_run(store, "s")
    found = await asyncflow.astats(store)
    assert found == asyncflow.stats(store)
    assert found.runs == {"succeeded": 1} and found.flows == 1
    assert found.tasks == 3
    # own, shared, late, total, done, the parameters key and size, and the flow's source
    assert found.blobs == (8 if run.source is not None else 7)


def test_stats_of_an_archive_shows_its_manifest(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    write_run(store, "F", [T("start", artifacts={"x": 1})])
    write_run(store, "F", [T("start", artifacts={"x": 2})])
    archive = make_archive(store, "F/2")
    manifest = json.loads(
        query(archive, "SELECT value FROM store_info WHERE key = 'archive'")[0][0]
    )
    found = asyncflow.stats(archive)
    assert found.archive == manifest and isinstance(manifest["digest"], str)
    assert found.runs == {"succeeded": 1} and found.blobs == 1
    assert asyncflow.stats(store).archive is None
    out = cli(capsys, "stats", "--store", archive)
    assert "archive     a read-only run archive; its manifest:" in out
    assert f'"digest": "{manifest["digest"]}"' in out
    data = json.loads(cli(capsys, "stats", "--json", "--store", archive))
    assert data["archive"] == manifest and data["runs"] == {"succeeded": 1}


def test_the_stats_command(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    write_run(store, "F", [T("start", artifacts={"x": 1}), T("end", artifacts={"x": 1})])
    out = cli(capsys, "stats", "--store", store)
    lines = dict(line.split(None, 1) for line in out.splitlines())
    assert lines["flows"] == "1"
    assert lines["runs"] == "1 (succeeded 1)"
    assert lines["values"] == "1 stored, 1 B of payload"
    assert lines["referenced"] == "2 B by artifacts and parameters (dedup ratio 2.00)"
    data = json.loads(cli(capsys, "stats", "--json", "--store", store))
    assert data["dedup_ratio"] == 2.0 and data["blobs"] == 1 and data["artifacts"] == 2
    err = cli(capsys, "stats", "--store", str(Path(store).with_name("nope.db")), code=2)
    assert "there is no store at" in err


# --- the README's examples --------------------------------------------------------------------


def test_the_readme_tidy_examples_run(tmp_path: Path) -> None:
    from tests.test_examples import EXAMPLES, block_with, run_python

    made = run_python(tmp_path, str(EXAMPLES / "quickstart.py"), "run", "--store", "runs.db")
    assert made.returncode == 0, made.stderr
    for needle in ('best.add_tag("keep", "paper")', 'asyncflow.gc("runs.db", keep_last=10'):
        proc = run_python(tmp_path, "-c", block_with(needle))
        assert proc.returncode == 0, proc.stderr
    store = str(tmp_path / "runs.db")
    assert Flow("TrainFlow", store)["1"].tags == frozenset({"keep"})
    assert count(store, "runs") == 1  # nothing was old, nor tagged scratch
