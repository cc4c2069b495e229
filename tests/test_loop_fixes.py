"""Loops and switches against what a README-only attacker tried (issue 13, attack 3).

``--with catch`` leaves switches alone; spin of a pass takes exactly that pass's inputs; the
max_passes refusal names the pass it refuses, is not retried, and a resume keeps the limit.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from asyncflow import Flow, StepFailed, UsageError
from tests.flows import loop_fix_flows as lf
from tests.flows import switch_flows as sf

pytestmark = pytest.mark.anyio

FLOWS = Path(sf.__file__)
ROOT = Path(__file__).resolve().parent.parent


def flow_cli(*argv: str, **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ASYNCFLOW_STORE"}
    env["PYTHONPATH"] = str(ROOT)
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, str(FLOWS), *argv],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_with_catch_leaves_a_failed_switch_failed(store: str) -> None:
    # Pass 1 of the looping switch raises: caught, it would go on to every case (the loop
    # and end at once); left alone, the run fails there, and check agrees.
    proc = flow_cli(
        "LoopFlow", "run", "--store", store, "--quiet", "--with", "catch",
        ASYNCFLOW_TEST_FAIL_PASS="1",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "refine fails in pass 1" in proc.stderr
    with Flow("LoopFlow", store=store) as flow:
        run = flow.latest_run
        assert run is not None and not run.successful
        assert [t.successful for t in run["refine"]] == [True, False]
        assert "end" not in run
    check = flow_cli("LoopFlow", "--with", "catch", "check")
    assert check.returncode == 0, check.stderr
    assert "LoopFlow is valid" in check.stdout


def test_with_catch_skips_switches_and_foreach_splits() -> None:
    from asyncflow._spec._override import DecoSpec, decorate_graph

    graph = decorate_graph(sf.ForeachInLoopFlow._af_graph(), (DecoSpec("catch", {}, "catch"),))
    caught = {node.name for node in graph if node.info.catch is not None}
    assert caught == {"start", "body", "end"}  # not fork (foreach), not join (switch)


def test_catch_with_a_config_expr_on_a_switch_is_refused() -> None:
    from asyncflow import Config, FlowSpec, FlowValidationError, catch, config_expr, step

    class CatchConfigFlow(FlowSpec):
        cfg = Config("cfg", default_value={"var": "err"})

        @step
        def start(self):
            self.next(self.loop)

        @catch(var=config_expr("cfg.var"))
        @step
        def loop(self):
            self.again = False
            self.next({"True": self.loop, "False": self.end}, condition="again")

        @step
        def end(self):
            pass

    with pytest.raises(FlowValidationError, match="@catch is on a switch"):
        CatchConfigFlow._af_graph()


async def test_spin_of_a_foreach_task_in_a_loop_gets_its_own_passs_element(store: str) -> None:
    run = await lf.GrowingForeachLoopFlow(store, echo=False).run()
    tasks = list(run["body"])
    assert sorted(t.data.got for t in tasks) == [
        ("1a", 1), ("2a", 2), ("2b", 2), ("3a", 3), ("3b", 3), ("3c", 3),
    ]  # fmt: skip
    # pass_index counts the earlier tasks of the same foreach index: a new element says 0
    assert sorted((t.data.got[0], t.data.seen_pass) for t in tasks) == [
        ("1a", 0), ("2a", 1), ("2b", 0), ("3a", 2), ("3b", 1), ("3c", 0),
    ]  # fmt: skip
    for task in tasks:
        spun = await lf.GrowingForeachLoopFlow(store, echo=False).spin(
            "body", run_id=run.id, task=task.id
        )
        assert spun.artifacts["got"] == task.data.got


async def test_spin_takes_every_pass_of_a_start_step_that_loops(store: str) -> None:
    run = await lf.StartLoopFlow(store, echo=False).run()
    passes = list(run["start"])
    assert [t.data.n for t in passes] == [1, 2, 3]
    for task in passes:
        spun = await lf.StartLoopFlow(store, echo=False).spin("start", run_id=run.id, task=task.id)
        assert spun.artifacts["n"] == task.data.n
        assert spun.next == (("start",) if task.data.n < 3 else ("end",))


async def test_the_refusal_names_the_pass_it_refuses_and_its_foreach_index(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASYNCFLOW_TEST_FAIL_PASS", "4")
    with pytest.raises(StepFailed) as info:
        await sf.LoopFlow(store, echo=False, max_passes=10).run(passes=6)
    origin = info.value.run
    assert origin is not None
    monkeypatch.delenv("ASYNCFLOW_TEST_FAIL_PASS")
    with pytest.raises(StepFailed) as again:
        await sf.LoopFlow(store, echo=False, max_passes=2).resume(origin.id)
    text = str(again.value.__cause__)
    assert "step 'refine' of LoopFlow would start its pass 5, but a run allows 2 passes" in text
    assert "a resume does not keep the limit" in text
    with pytest.raises(StepFailed) as one:
        await sf.EndlessFlow(store, echo=False, max_passes=1).run()
    assert "would start its pass 2, but a run allows 1 pass of a step" in str(one.value.__cause__)
    with pytest.raises(StepFailed) as inside:
        await sf.ForeachLoopFlow(store, echo=False, max_passes=2).run()
    text = str(inside.value.__cause__)
    assert "step 'count_up' of ForeachLoopFlow in foreach index 1 would start its pass 3" in text


async def test_the_refusal_is_not_retried(store: str) -> None:
    with pytest.raises(StepFailed) as info:
        await lf.RetriedLoopFlow(store, echo=False, max_passes=2).run()
    assert "would start its pass 3" in str(info.value.__cause__)
    run = info.value.run
    assert run is not None
    passes = list(run["go"])
    assert [t.successful for t in passes] == [True, True, False]
    assert len(passes[-1].attempts) == 1  # refused once: no retry can change it


async def test_run_options_given_to_run_or_resume_point_to_the_constructor(store: str) -> None:
    flow = sf.EndlessFlow(store, echo=False)
    with pytest.raises(UsageError, match=r"give it to the constructor, EndlessFlow\(max_passes"):
        await flow.run(max_passes=5)
    with pytest.raises(UsageError, match=r"EndlessFlow\(max_passes=\.\.\.\)\.resume\(\)"):
        await flow.resume(max_passes=5)
    with pytest.raises(UsageError, match="takes run_id and step, not 'nonsense'"):
        await flow.resume(nonsense=1)
    with pytest.raises(UsageError, match=r"EndlessFlow\(max_passes=\.\.\.\)\.stream\(\)"):
        async with flow.stream(max_passes=5) as events:
            async for _ in events:
                pass
    assert not os.path.exists(store)  # refused before any run was recorded


async def test_pass_index_counts_the_steps_tasks_over_the_run_so_nested_loops_go_on(
    store: str,
) -> None:
    # The inner loop's step counts on across the outer loop's passes (documented), and so
    # does max_passes: 2 epochs of 3 batches need max_passes=6, not 3.
    run = await lf.NestedLoopFlow(store, echo=False).run()
    assert run.data.seen == [0, 1, 2, 3, 4, 5]
    assert [t.data.epoch_no for t in run["epoch_end"]] == [1, 2]
    with pytest.raises(StepFailed) as info:
        await lf.NestedLoopFlow(store, echo=False, max_passes=3).run()
    assert "step 'batch' of NestedLoopFlow would start its pass 4" in str(info.value.__cause__)
    assert (await lf.NestedLoopFlow(store, echo=False, max_passes=6).run()).successful


def test_a_switch_in_a_foreach_must_meet_before_the_join() -> None:
    from asyncflow import FlowValidationError

    with pytest.raises(FlowValidationError) as info:
        lf.ForeachSwitchIntoJoinFlow._af_graph()
    text = str(info.value)
    assert "2 steps lead here from the foreach body of 'start'" in text
    assert "let the cases of a switch inside a branch (or a foreach) meet in a step" in text
