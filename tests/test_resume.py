"""flow.resume() and ``python flow.py resume``: clones by reference, what runs again, errors.

Each flow appends the key of every task whose code runs to a log file (tests/flows/
resume_flows.py), so these tests see exactly which tasks ran and which were cloned.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from asyncflow import AsyncflowError, FlowSpec, NotFoundError, Run, StepFailed, UsageError
from tests.flows import resume_flows as rf
from tests.flows.resume_flows import ran
from tests.test_scheduler import SHAPES

FLOWS_FILE = Path(rf.__file__)


# --- helpers -------------------------------------------------------------------------------------


def tasks(store: str, run_id: str | int) -> dict[tuple[str, str], dict[str, Any]]:
    """(step, path) -> the task row, straight from the store file."""
    conn = sqlite3.connect(store)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute("SELECT * FROM tasks WHERE run_id = ?", (int(run_id),)).fetchall()
    finally:
        conn.close()
    return {(r["step"], r["path"]): dict(r) for r in rows}


def artifacts(store: str, run_id: str | int, task_id: int) -> dict[str, bytes]:
    conn = sqlite3.connect(store)
    try:
        rows = conn.execute(
            "SELECT name, sha FROM artifacts WHERE run_id = ? AND task_id = ?",
            (int(run_id), task_id),
        ).fetchall()
    finally:
        conn.close()
    return {name: bytes(sha) for name, sha in rows}


def assert_clone(store: str, clone: Run, origin: Run, step: str, path: str = "") -> None:
    """The task (step, path) of ``clone`` is a clone of ``origin``'s: same artifacts by sha."""
    new = tasks(store, clone.id)[(step, path)]
    old = tasks(store, origin.id)[(step, path)]
    assert new["origin_task_id"] == old["id"], (step, path)
    assert new["status"] == old["status"]
    assert (new["stdout"], new["stderr"]) == (old["stdout"], old["stderr"])
    assert artifacts(store, clone.id, new["id"]) == artifacts(store, origin.id, old["id"])


def assert_ran(store: str, run: Run, step: str, path: str = "") -> None:
    row = tasks(store, run.id)[(step, path)]
    assert row["origin_task_id"] is None and row["status"] == "succeeded", (step, path)


async def failed_run(flow: FlowSpec, **params: Any) -> Run:
    with pytest.raises(StepFailed) as info:
        await flow.run(**params)
    run: Run = info.value.run
    return run


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    """The log and fail files of a flow, as parameters."""
    return {"log": str(tmp_path / "ran.log"), "fail": str(tmp_path / "fail.txt")}


def plan_failures(files: dict[str, str], *keys: str) -> None:
    Path(files["fail"]).write_text("".join(k + "\n" for k in keys))


# --- what is cloned and what runs ----------------------------------------------------------------


@pytest.mark.anyio
async def test_resume_after_a_failure_clones_the_steps_before_it(
    store: str, files: dict[str, str]
) -> None:
    flow = rf.LinearFlow(store=store, echo=False)
    plan_failures(files, "b")
    origin = await failed_run(flow, factor=4, **files)
    assert ran(files["log"]) == ["start", "a", "b"]
    os.remove(files["fail"])

    run = await flow.resume()

    assert run.status == "succeeded" and run.successful
    assert run.origin_run_id == origin.id and run.id != origin.id
    assert ran(files["log"]) == ["start", "a", "b", "b", "c", "end"]  # start, a: not again
    assert_clone(store, run, origin, "start")
    assert_clone(store, run, origin, "a")
    for step in ("b", "c", "end"):
        assert_ran(store, run, step)
    assert run["start"].task.stdout == "start says hi\n"  # a clone keeps the origin's output
    assert run["start"].task.stderr == "start warns\n"
    assert run.parameters == origin.parameters == {"factor": 4, **files}
    assert run.data.total == (2 * 4 + 100) + 5000
    # current.origin_run_id is set in the tasks that ran; the clone of a kept the origin's None
    assert run["c"].task.data.origin_seen == origin.id
    assert run["a"].task.data.origin_seen is None
    assert tasks(store, origin.id)[("b", "")]["status"] == "failed"  # the origin is untouched


@pytest.mark.anyio
async def test_resume_reruns_only_the_failed_foreach_split(
    store: str, files: dict[str, str]
) -> None:
    flow = rf.ForeachFlow(store=store, echo=False, max_workers=4)
    plan_failures(files, "body:7")
    origin = await failed_run(flow, **files)
    os.remove(files["fail"])
    first = ran(files["log"])
    done = {p for (s, p), row in tasks(store, origin.id).items() if row["status"] == "succeeded"}
    # once body:7 failed no new task started: splits not started yet are missing
    missing = {str(i) for i in range(10)} - done
    assert "7" in missing and {str(i) for i in range(7)} <= done  # started before 7

    run = await flow.resume(origin.id)

    again = ran(files["log"])[len(first) :]
    assert sorted(again[:-2]) == sorted(f"body:{p}" for p in missing)
    assert again[-2:] == ["join", "end"]
    assert_clone(store, run, origin, "start")
    for i in range(10):
        if str(i) in missing:
            assert_ran(store, run, "body", str(i))
        else:
            assert_clone(store, run, origin, "body", str(i))
    assert run["join"].data.labels == [f"item{i}@{i}" for i in range(10)]
    assert [t.index for t in run["body"]] == list(range(10))


@pytest.mark.anyio
async def test_resume_of_a_successful_run_runs_no_code(store: str, files: dict[str, str]) -> None:
    flow = rf.ForeachFlow(store=store, echo=False)
    origin = await flow.run(width=3, **files)
    before = ran(files["log"])

    run = await flow.resume()

    assert ran(files["log"]) == before
    assert run.successful and run.origin_run_id == origin.id
    rows = tasks(store, run.id)
    assert len(rows) == len(tasks(store, origin.id)) == 6
    for step, path in rows:
        assert_clone(store, run, origin, step, path)
    assert run["join"].data.labels == ["item0@0", "item1@1", "item2@2"]


@pytest.mark.anyio
async def test_resume_from_a_step_reruns_it_and_everything_after(
    store: str, files: dict[str, str]
) -> None:
    flow = rf.LinearFlow(store=store, echo=False)
    origin = await flow.run(**files)

    run = await flow.resume(step="b")

    assert ran(files["log"]) == ["start", "a", "b", "c", "end", "b", "c", "end"]
    assert_clone(store, run, origin, "start")
    assert_clone(store, run, origin, "a")
    for step in ("b", "c", "end"):
        assert_ran(store, run, step)
    assert run.data.total == origin.data.total


@pytest.mark.anyio
async def test_resume_from_a_foreach_step_reruns_every_split(
    store: str, files: dict[str, str]
) -> None:
    flow = rf.ForeachFlow(store=store, echo=False)
    origin = await flow.run(width=4, **files)
    before = ran(files["log"])

    run = await flow.resume(origin.id, step="body")

    assert sorted(ran(files["log"])[len(before) :]) == sorted(
        ["body:0", "body:1", "body:2", "body:3", "join", "end"]
    )
    assert_clone(store, run, origin, "start")
    assert run["join"].data.labels == [f"item{i}@{i}" for i in range(4)]


@pytest.mark.anyio
async def test_resume_twice_in_a_row(store: str, files: dict[str, str]) -> None:
    flow = rf.LinearFlow(store=store, echo=False)
    plan_failures(files, "b", "c")
    first = await failed_run(flow, **files)
    plan_failures(files, "c")

    with pytest.raises(StepFailed) as info:
        await flow.resume()
    second = info.value.run
    assert second.status == "failed" and second.origin_run_id == first.id
    assert "'c'" in str(info.value) and info.value.pathspec.startswith(f"LinearFlow/{second.id}/c/")
    os.remove(files["fail"])

    third = await flow.resume()

    assert third.successful and third.origin_run_id == second.id
    assert ran(files["log"]) == ["start", "a", "b", "b", "c", "c", "end"]
    # clones of clones point at the task of the run they resume, and share its artifacts
    for step in ("start", "a", "b"):
        assert_clone(store, third, second, step)
    assert_clone(store, second, first, "a")
    assert third.parameters == first.parameters


@pytest.mark.anyio
async def test_a_caught_failure_is_kept_like_a_success(store: str, files: dict[str, str]) -> None:
    flow = rf.CatchFlow(store=store, echo=False)
    plan_failures(files, "after")
    origin = await failed_run(flow, **files)
    os.remove(files["fail"])

    run = await flow.resume()

    assert ran(files["log"]) == ["start", "risky", "after", "after", "end"]
    assert_clone(store, run, origin, "risky")
    assert tasks(store, run.id)[("risky", "")]["status"] == "caught"
    assert run["after"].task.data.seen == "ValueError"


@pytest.mark.anyio
async def test_a_retried_task_is_cloned_with_its_attempts(
    store: str, files: dict[str, str]
) -> None:
    flow = rf.RetryFlow(store=store, echo=False)
    plan_failures(files, "after")
    origin = await failed_run(flow, **files)
    os.remove(files["fail"])

    run = await flow.resume()

    assert ran(files["log"]) == ["start", "flaky", "flaky", "after", "after", "end"]
    assert_clone(store, run, origin, "flaky")
    assert tasks(store, run.id)[("flaky", "")]["attempt"] == 1

    def attempts(run_id: str, task_id: int) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(store)
        try:
            return conn.execute(
                "SELECT attempt, status, exception FROM attempts WHERE run_id = ? AND task_id = ?",
                (int(run_id), task_id),
            ).fetchall()
        finally:
            conn.close()

    new_id = tasks(store, run.id)[("flaky", "")]["id"]
    old_id = tasks(store, origin.id)[("flaky", "")]["id"]
    assert attempts(run.id, new_id) == attempts(origin.id, old_id)
    assert attempts(run.id, new_id) == [(0, "failed", "ConnectionError: first attempt fails")]


@pytest.mark.anyio
async def test_a_set_is_split_in_the_same_order_every_time(
    store: str, files: dict[str, str]
) -> None:
    # A set of str iterates in an order that depends on the process's hash seed; the split
    # order is canonical so that a resume (maybe in another process) gives every index the
    # element the origin gave it.
    flow = rf.SetForeachFlow(store=store, echo=False)
    words = sorted({"pear", "apple", "fig", "kiwi", "plum", "lime"})
    plan_failures(files, "body:2")
    origin = await failed_run(flow, **files)
    os.remove(files["fail"])
    for task in origin["body"]:
        if task.successful:
            assert task.data.pair == (task.index, words[task.index])

    run = await flow.resume()

    assert run["join"].data.pairs == list(enumerate(words))


@pytest.mark.anyio
@pytest.mark.parametrize(
    "shape", ["nested-foreach", "split-inside-foreach", "foreach-inside-branch"]
)
async def test_resume_clones_every_shape(store: str, shape: str) -> None:
    spec = SHAPES[shape]
    flow = spec.flow(store=store, echo=False)
    origin = await flow.run()

    run = await flow.resume()

    assert run.successful
    rows = tasks(store, run.id)
    assert rows.keys() == tasks(store, origin.id).keys()
    for step, path in rows:
        assert_clone(store, run, origin, step, path)
    spec.check(run)


@pytest.mark.anyio
async def test_resume_from_inside_a_nested_foreach(store: str) -> None:
    spec = SHAPES["nested-foreach"]
    flow = spec.flow(store=store, echo=False)
    origin = await flow.run()

    run = await flow.resume(step="leaf")

    rows = tasks(store, run.id)
    for (step, _path), row in rows.items():
        assert (row["origin_task_id"] is None) == (step not in ("start", "mid")), step
    assert rows.keys() == tasks(store, origin.id).keys()
    spec.check(run)


@pytest.mark.anyio
async def test_resume_with_a_changed_graph_goes_by_step_name(
    store: str, files: dict[str, str]
) -> None:
    plan_failures(files, "end")
    origin = await failed_run(rf.graph_flow(1)(store=store, echo=False), **files)
    os.remove(files["fail"])

    run = await rf.graph_flow(2)(store=store, echo=False).resume()

    # start is cloned; a, whose next() changed, runs again with everything after it; the
    # tasks of old, a step gone, are ignored
    assert ran(files["log"]) == ["start", "a", "old", "end", "a", "new", "end"]
    assert_clone(store, run, origin, "start")
    assert_ran(store, run, "a")
    assert set(tasks(store, run.id)) == {("start", ""), ("a", ""), ("new", ""), ("end", "")}
    assert run["new"].task.data.x == 2 + 5
    assert run.parameters == {**files, "extra": 5}  # a parameter declared since: its default


# --- errors ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_unknown_run_lists_the_runs(store: str, files: dict[str, str]) -> None:
    flow = rf.LinearFlow(store=store, echo=False)
    await flow.run(**files)
    await flow.run(**files)

    with pytest.raises(NotFoundError) as info:
        await flow.resume(99)

    text = str(info.value)
    assert "99" in text and "2, 1" in text
    with pytest.raises(NotFoundError, match="not a run id"):
        await flow.resume("latest")
    # another flow's runs are not this flow's
    with pytest.raises(NotFoundError, match=r"ForeachFlow has no run in the store"):
        await rf.ForeachFlow(store=store, echo=False).resume()


@pytest.mark.anyio
async def test_unknown_step_lists_the_steps(store: str, files: dict[str, str]) -> None:
    flow = rf.LinearFlow(store=store, echo=False)
    await flow.run(**files)

    with pytest.raises(NotFoundError) as info:
        await flow.resume(step="nope")

    assert "'nope'" in str(info.value) and "start, a, b, c, end" in str(info.value)


@pytest.mark.anyio
async def test_resume_without_a_store_is_an_error_and_creates_none(tmp_path: Path) -> None:
    store = tmp_path / "none.db"
    with pytest.raises(NotFoundError, match="no store"):
        await rf.LinearFlow(store=store, echo=False).resume()
    assert not store.exists()


@pytest.mark.anyio
async def test_a_run_still_running_is_not_resumed(store: str, files: dict[str, str]) -> None:
    flow = rf.SleepyFlow(store=store, echo=False)
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: flow.run(nap=0.3, **files))
        with anyio.fail_after(10):
            while "plain" not in ran(files["log"]):
                await anyio.sleep(0.01)
        with pytest.raises(AsyncflowError, match="still running"):
            await flow.resume()
    assert (await flow.resume()).successful  # once it has ended


@pytest.mark.anyio
async def test_resume_takes_no_parameters(store: str, files: dict[str, str]) -> None:
    flow = rf.LinearFlow(store=store, echo=False)
    await flow.run(**files)

    with pytest.raises(UsageError, match="takes run_id and step, not 'factor'; a resume reuses"):
        await flow.resume(factor=5)


# --- the command line --------------------------------------------------------------------


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ASYNCFLOW_STORE"}
    return subprocess.run(
        [sys.executable, str(FLOWS_FILE), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.mark.anyio
async def test_cli_resume(store: str, files: dict[str, str]) -> None:
    flow = rf.LinearFlow(store=store, echo=False)
    plan_failures(files, "c")
    origin = await failed_run(flow, **files)
    other = await failed_run(flow, **files)  # the latest: resume must take the one named
    os.remove(files["fail"])

    proc = cli("LinearFlow", "resume", "--origin-run-id", origin.id, "--store", store, "--quiet")

    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert f"resumed LinearFlow/{origin.id}" in proc.stdout
    assert proc.stdout.count("\n") == 1  # --quiet: only the final line
    run = await flow.resume()  # the latest run now is the CLI's: fully cloned
    assert run.origin_run_id not in (origin.id, other.id)
    assert ran(files["log"]).count("c") == 3  # origin, other, the CLI's resume

    bad = cli("LinearFlow", "resume", "--factor", "2", "--store", store)
    assert bad.returncode == 2 and "parameters" in bad.stderr
    assert bad.stderr.count("\n") == 1
    missing = cli("LinearFlow", "resume", "nope", "--store", store)
    assert missing.returncode == 2 and "start, a, b, c, end" in missing.stderr


@pytest.mark.anyio
async def test_a_foreach_task_is_never_cloned_when_its_split_ran_again(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.flows import resplit

    flow = resplit.ResplitFlow(store=store, echo=False)
    origin = await flow.run()
    assert origin["join"].task.data.outs == [10, 20, 30]
    # The origin's elements can no longer be decoded (their class is gone), so the split
    # runs again, now with other elements; the foreach tasks below it must all run again.
    monkeypatch.delattr(resplit, "Box")
    monkeypatch.setitem(resplit.ITEMS, "kind", "ints")

    run = await flow.resume(origin.id)

    assert run["start"].task.origin_task_id is not None  # cloned
    assert run["split"].task.origin_task_id is None  # ran again
    body = list(run["body"])
    assert [t.origin_task_id for t in body] == [None, None]
    assert sorted(t.data.out for t in body) == [40, 50]
    assert run["join"].task.data.outs == [40, 50]
