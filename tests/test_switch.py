"""Switches: ``self.next({"a": self.x, ...}, condition="name")`` runs exactly one case.

Behaviour (only the chosen case gets a task; cases meet again without a join; inside a foreach
and in a branch of a split), run-time errors (a value no case has, a condition never set), the
graph rules with their messages, ``show`` and ``check`` on the command line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from asyncflow import Flow, FlowValidationError, Run, StepFailed
from tests.flows import bad_switches as bs
from tests.flows import switch_flows as sf

pytestmark = pytest.mark.anyio

FLOWS = Path(sf.__file__)


def steps_of(run: Run) -> list[str]:
    return [s.id for s in run]


# --- running --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "taken", "skipped"),
    [("big", "train_big", "train_small"), ("small", "train_small", "train_big")],
)
async def test_a_switch_runs_only_the_case_its_condition_names(
    store: str, size: str, taken: str, skipped: str
) -> None:
    run = await sf.SizeFlow(store, echo=False).run(size=size)
    assert run.successful
    assert steps_of(run) == ["start", taken, "end"]
    assert skipped not in run  # the other case never got a task
    assert run.data.final == f"{size} model"
    assert [t.id for t in run[taken]] == ["2"]


@pytest.mark.parametrize(("level", "tier"), [(1, "low"), (2, "high"), (3, "high")])
async def test_cases_meet_again_without_a_join_and_values_match_as_text(
    store: str, level: int, tier: str
) -> None:
    # level is an int parameter; the cases are "1", "2", "3" (matched as str(value)).
    run = await sf.MeetFlow(store, echo=False).run(level=level)
    assert run.successful
    assert run["after"].task.data.seen == f"after {tier}"
    assert len(list(run["after"])) == 1
    other = ({"low", "high"} - {tier}).pop()
    assert other not in run


async def test_a_value_no_case_has_fails_the_task_naming_step_value_and_cases(store: str) -> None:
    with pytest.raises(StepFailed) as info:
        await sf.SizeFlow(store, echo=False).run(size="medium")
    cause = info.value.__cause__
    assert isinstance(cause, FlowValidationError)
    text = str(cause)
    assert "step 'start' of SizeFlow" in text
    assert "self.choice is 'medium'" in text
    assert "matches none of the cases ('big', 'small')" in text
    run = info.value.run
    assert run is not None and not run.successful
    assert steps_of(run) == ["start"]  # neither case ran
    assert not run["start"].task.successful


async def test_a_condition_never_set_fails_clearly(store: str) -> None:
    with pytest.raises(StepFailed) as info:
        await sf.NoConditionFlow(store, echo=False).run()
    text = str(info.value.__cause__)
    assert "has condition='route', but no artifact 'route' exists" in text
    assert "set self.route to one of the cases ('a', 'b')" in text


async def test_a_switch_inside_a_foreach_takes_a_case_per_element(store: str) -> None:
    run = await sf.ForeachSwitchFlow(store, echo=False).run()
    assert run.successful
    assert run.data.labels == [
        "1 is odd", "2 is even", "3 is odd", "4 is even", "5 is odd"
    ]  # fmt: skip
    assert len(list(run["even"])) == 2 and len(list(run["odd"])) == 3
    assert len(list(run["gather"])) == 5


async def test_a_switch_in_a_branch_of_a_split(store: str) -> None:
    run = await sf.SplitSwitchFlow(store, echo=False).run()
    assert run.successful
    assert run.data.hows == ["quick", "right"]
    assert "careful" not in run


# --- the graph --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flow", "words"),
    [
        (bs.BadKey, "the case `1` is not a literal string; write a switch as self.next("),
        (bs.BadTarget, "the case 'b' leads to `print`"),
        (bs.NoCondition, "a dict of cases needs condition= naming the artifact"),
        (bs.DynamicCondition, "condition= is `name`, not a literal string"),
        (bs.ConditionWithoutCases, "condition= needs a dict of cases as the only target"),
        (bs.PrivateCondition, "condition='_x' starts with '_'"),
        (bs.ReservedCondition, "condition='next' is reserved"),
        (bs.UnknownCase, "self.next names self.nowhere, which is not a step"),
        (bs.CatchOnSwitch, "@catch is on a switch"),
        (
            bs.SwitchIntoJoin,
            "let the cases of a switch inside a branch (or a foreach) meet in a step",
        ),
    ],
)
def test_bad_switches_are_refused_before_anything_runs(flow: type, words: str) -> None:
    with pytest.raises(FlowValidationError) as info:
        flow._af_graph()
    assert words in str(info.value)
    assert "Step 'start'" in str(info.value) or "Step '" in str(info.value)


def test_the_graph_records_the_switch() -> None:
    graph = sf.SizeFlow._af_graph()
    node = graph["start"]
    assert node.kind.value == "switch"
    assert node.condition == "choice"
    assert node.cases == (("big", "train_big"), ("small", "train_small"))
    assert graph["end"].in_ == ("train_big", "train_small")
    assert not graph["end"].is_join
    step_json = graph.to_json()["steps"][0]
    assert step_json["condition"] == "choice"
    assert step_json["cases"] == {"big": "train_big", "small": "train_small"}
    mermaid = graph.to_mermaid()
    assert 's_start -->|"choice = big"| s_train_big' in mermaid


def python(*argv: str, store: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ASYNCFLOW_STORE"}
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, str(FLOWS), *argv, "--store", store] if argv[1] in ("run", "resume")
        else [sys.executable, str(FLOWS), *argv],
        capture_output=True, text=True, timeout=120, env=env, cwd=root,
    )  # fmt: skip


def test_show_draws_the_switch_and_check_accepts_it(store: str) -> None:
    shown = python("SizeFlow", "show", store=store)
    assert shown.returncode == 0, shown.stderr
    assert "start --switch(choice)--> {'big': train_big, 'small': train_small}" in shown.stdout
    checked = python("SizeFlow", "check", store=store)
    assert checked.returncode == 0, checked.stderr


def test_the_command_line_runs_the_chosen_case(store: str) -> None:
    proc = python("SizeFlow", "run", "--size", "small", "--quiet", store=store)
    assert proc.returncode == 0, proc.stderr
    with Flow("SizeFlow", store=store) as flow:
        run = flow.latest_run
        assert run is not None and run.successful
        assert steps_of(run) == ["start", "train_small", "end"]
    bad = python("SizeFlow", "run", "--size", "huge", "--quiet", store=store)
    assert bad.returncode == 1
    assert "self.choice is 'huge', which matches none of the cases ('big', 'small')" in bad.stderr
