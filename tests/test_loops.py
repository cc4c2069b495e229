"""Loops: a switch that leads back to its own step (or an earlier one).

Each pass is a new task with its own id; the client lists the passes in order; ``current``
tells the pass; artifacts flow from pass to pass; ``max_passes`` stops a loop that never ends;
resume (after a failed pass, or after the process was killed) clones the passes that finished
and runs the rest; live progress counts the passes as they come; spin re-runs one pass.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from asyncflow import (
    Flow,
    FlowValidationError,
    StepFailed,
    UsageError,
    current,
    events,
)
from tests.flows import bad_switches as bs
from tests.flows import switch_flows as sf

pytestmark = pytest.mark.anyio

FLOWS = Path(sf.__file__)
ROOT = Path(__file__).resolve().parent.parent


def ran_log(tmp_path: Path) -> list[str]:
    log = tmp_path / "ran.log"
    return log.read_text().splitlines() if log.exists() else []


@pytest.fixture
def logged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "ran.log"
    monkeypatch.setenv("ASYNCFLOW_TEST_RAN", str(log))
    return log


async def test_three_passes_then_end(store: str) -> None:
    run = await sf.LoopFlow(store, echo=False).run()
    assert run.successful
    passes = list(run["refine"])
    assert len(passes) == 3
    ids = [int(t.id) for t in passes]
    assert ids == sorted(ids) and len(set(ids)) == 3  # each pass its own task, in order
    assert [t.stdout for t in passes] == [f"pass {i} count {i + 1}\n" for i in range(3)]
    assert [t.data.state for t in passes] == ["again", "again", "done"]
    # pass k sees what pass k-1 set
    assert run["end"].task.data.history == [(0, 1), (1, 2), (2, 3)]
    assert run.data.total == 3
    assert [s.id for s in run] == ["start", "refine", "end"]


async def test_a_loop_of_two_steps(store: str) -> None:
    run = await sf.TwoStepLoopFlow(store, echo=False).run()
    assert run.successful
    assert [t.data.size for t in run["grow"]] == [2, 4, 8]
    assert [t.data.big for t in run["check"]] == [False, False, True]


async def test_a_loop_inside_a_foreach_counts_passes_per_element(store: str) -> None:
    run = await sf.ForeachLoopFlow(store, echo=False).run()
    assert run.successful
    join = run["join"].task.data
    assert join.counts == [2, 3, 1]
    assert join.seen == [[0, 1], [0, 1, 2], [0]]  # current.pass_index, per element
    assert len(list(run["count_up"])) == 6


@pytest.mark.parametrize("executor", ["thread", "process"])
async def test_a_loop_around_a_foreach_counts_each_pass_once(store: str, executor: str) -> None:
    flow = sf.ForeachInLoopFlow(store, echo=False, executor=executor)
    async with flow.stream() as stream:
        evs = [ev async for ev in stream]
    assert evs[-1].status == "succeeded"
    last = {}
    for ev in evs:
        if isinstance(ev, events.StepProgress):
            last[ev.step] = (ev.done, ev.total)
    assert last == {"fork": (3, 3), "body": (6, 6), "join": (3, 3)}
    with Flow("ForeachInLoopFlow", store=store) as client:
        run = client.latest_run
        assert run is not None
        assert [t.data.total for t in run["join"]] == [3, 6, 9]
        assert len(list(run["body"])) == 6


async def test_pass_index_is_zero_outside_loops_and_none_outside_a_task(store: str) -> None:
    assert current.pass_index is None
    run = await sf.SizeFlow(store, echo=False).run()
    assert run.successful


async def test_max_passes_stops_a_loop_that_never_ends(store: str) -> None:
    with pytest.raises(StepFailed) as info:
        await sf.EndlessFlow(store, echo=False, max_passes=5).run()
    text = str(info.value.__cause__)
    assert "step 'spin_round' of EndlessFlow would start its pass 6" in text
    assert "a run allows 5 passes of a step (max_passes)" in text
    assert "EndlessFlow(max_passes=N)" in text and "--max-passes N" in text
    run = info.value.run
    assert run is not None and not run.successful
    passes = list(run["spin_round"])
    assert len(passes) == 6
    assert [t.successful for t in passes] == [True] * 5 + [False]
    assert "end" not in run


async def test_a_resume_with_a_higher_limit_goes_on_from_the_refused_pass(store: str) -> None:
    with pytest.raises(StepFailed) as info:
        await sf.LoopFlow(store, echo=False, max_passes=3).run(passes=5)
    origin = info.value.run
    assert origin is not None
    old = list(origin["refine"])
    assert [t.successful for t in old] == [True, True, True, False]
    run = await sf.LoopFlow(store, echo=False, max_passes=10).resume(origin.id)
    assert run.successful and run.data.total == 5
    new = list(run["refine"])
    assert [t.origin_task_id for t in new] == [t.id for t in old[:3]] + [None, None]


def test_max_passes_must_be_a_positive_integer() -> None:
    for bad in (0, -1, 2.5, True):
        with pytest.raises(UsageError, match="max_passes must be a positive integer"):
            sf.EndlessFlow(max_passes=bad)


async def test_resume_after_a_failed_pass_clones_the_passes_before_it(
    store: str, tmp_path: Path, logged: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASYNCFLOW_TEST_FAIL_PASS", "2")
    with pytest.raises(StepFailed) as info:
        await sf.LoopFlow(store, echo=False).run()
    origin = info.value.run
    assert origin is not None
    old = list(origin["refine"])
    assert [t.successful for t in old] == [True, True, False]
    monkeypatch.delenv("ASYNCFLOW_TEST_FAIL_PASS")
    logged.unlink()
    run = await sf.LoopFlow(store, echo=False).resume(origin.id)
    assert run.successful
    assert ran_log(tmp_path) == ["refine 2", "end 0"]  # passes 0 and 1 were cloned
    new = list(run["refine"])
    assert len(new) == 3
    assert [t.origin_task_id for t in new] == [old[0].id, old[1].id, None]
    assert run["end"].task.data.history == [(0, 1), (1, 2), (2, 3)]
    assert run.data.total == 3


async def test_resume_after_the_process_was_killed_in_a_pass(
    store: str, tmp_path: Path, logged: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ASYNCFLOW_STORE"}
    env |= {
        "ASYNCFLOW_TEST_CRASH_PASS": "1",
        "PYTHONPATH": str(ROOT),
        "ASYNCFLOW_TEST_STORE": store,
    }
    proc = subprocess.run(
        [sys.executable, str(FLOWS), "LoopFlow", "run", "--store", store, "--quiet"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0
    assert ran_log(tmp_path) == ["start 0", "refine 0", "refine 1"]
    logged.unlink()
    run = await sf.LoopFlow(store, echo=False).resume()
    assert run.successful
    assert ran_log(tmp_path) == ["refine 1", "refine 2", "end 0"]
    passes = list(run["refine"])
    assert [t.origin_task_id is not None for t in passes] == [True, False, False]
    assert run.data.total == 3


async def test_live_progress_counts_the_passes_as_they_come(store: str) -> None:
    async with sf.LoopFlow(store, echo=False).stream(passes=4) as stream:
        evs = [ev async for ev in stream]
    progress = [ev for ev in evs if isinstance(ev, events.StepProgress)]
    assert {ev.step for ev in progress} == {"refine"}
    assert (progress[-1].done, progress[-1].total) == (4, 4)
    finished = [ev for ev in evs if isinstance(ev, events.TaskFinished) and ev.step == "refine"]
    assert len(finished) == 4
    # counted while running: a progress event comes before the last pass starts
    last_start = [ev.seq for ev in evs if isinstance(ev, events.TaskStarted)][-2]
    assert any(ev.seq < last_start and ev.done >= 1 for ev in progress)


async def test_spin_re_runs_one_pass_from_its_stored_inputs(store: str) -> None:
    run = await sf.LoopFlow(store, echo=False).run()
    second = list(run["refine"])[1]
    result = await sf.LoopFlow(store, echo=False).spin("refine", run_id=run.id, task=second.id)
    assert result.artifacts["count"] == 2
    assert result.artifacts["history"] == [(0, 1), (1, 2)]
    assert result.stdout == "pass 1 count 2\n"
    assert result.next == ("refine",)


def flow_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ASYNCFLOW_STORE"}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, str(FLOWS), *argv],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_command_line_runs_a_loop_and_guards_it(store: str) -> None:
    proc = flow_cli("LoopFlow", "run", "--store", store, "--quiet", "--passes", "4")
    assert proc.returncode == 0, proc.stderr
    with Flow("LoopFlow", store=store) as flow:
        run = flow.latest_run
        assert run is not None and run.data.total == 4
        assert len(list(run["refine"])) == 4
    endless = flow_cli("EndlessFlow", "run", "--store", store, "--quiet", "--max-passes", "3")
    assert endless.returncode == 1
    assert "would start its pass 4, but a run allows 3 passes" in endless.stderr
    bad = flow_cli("EndlessFlow", "run", "--store", store, "--max-passes", "0")
    assert bad.returncode == 2
    assert "--max-passes must be at least 1, not 0" in bad.stderr


def test_logs_dump_and_spin_take_a_pass_by_its_task_id(store: str) -> None:
    proc = flow_cli("LoopFlow", "run", "--store", store)
    assert proc.returncode == 0, proc.stderr
    assert "step refine: 3/3 done" in proc.stdout  # the progress line counts every pass
    with Flow("LoopFlow", store=store) as flow:
        run = flow.latest_run
        assert run is not None
        second = list(run["refine"])[1].pathspec
    logs = flow_cli("LoopFlow", "logs", second, "--store", store)
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout == "pass 1 count 2\n"
    dump = flow_cli("LoopFlow", "dump", second, "--store", store)
    assert dump.returncode == 0, dump.stderr
    assert "count = 2" in dump.stdout and "state = 'again'" in dump.stdout
    task_id = second.rsplit("/", 1)[1]
    spun = flow_cli("LoopFlow", "spin", "refine", "--run-id", run.id, "--task", task_id,
                    "--store", store)  # fmt: skip
    assert spun.returncode == 0, spun.stderr
    assert "pass 1 count 2" in spun.stdout and "count = 2" in spun.stdout


def test_show_draws_the_loop() -> None:
    proc = flow_cli("LoopFlow", "show")
    assert proc.returncode == 0, proc.stderr
    assert "refine --switch(state)--> {'again': refine, 'done': end}" in proc.stdout


# --- the graph --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flow", "words"),
    [
        (bs.CycleWithoutSwitch, "form a cycle (a -> b -> a) that passes through no switch"),
        (bs.LoopOutOfForeach, "it loops back to 'start', but 'start' is not inside the same split"),
        (bs.NoWayOut, "end can never be reached from here: every way on loops back"),
        (bs.JoinLoopsToItself, "it loops back to 'join', but 'join' is a join, whose inputs"),
    ],
)
def test_bad_loops_are_refused_before_anything_runs(flow: type, words: str) -> None:
    with pytest.raises(FlowValidationError) as info:
        flow._af_graph()
    assert words in str(info.value)
