"""The scheduler runs every graph shape: the right tasks, joins in order, the right values.

Each shape runs once (per module) against its own real store; the checks read the run back
with the client.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
import pytest

from asyncflow import Flow, FlowSpec, Run
from tests.flows import shapes

N = None  # the index of a task outside any foreach


@dataclass(frozen=True)
class Shape:
    flow: type[FlowSpec]
    # step -> the index of each of its tasks, in the client's (index) order
    tasks: dict[str, list[int | None]]
    check: Callable[[Run], None]
    # (slow, fast): the slow step's tasks must all finish after the fast step's, which
    # proves the join really received its inputs in the reverse of its order
    finishes_later: list[tuple[str, str]] = field(default_factory=list)


def finished(run: Run, step: str) -> list[float]:
    return [t.finished_at.timestamp() for t in run[step]]


def check_linear(run: Run) -> None:
    assert [run[s].data.x for s in ("start", "double", "add", "end")] == [3, 6, 7, 7]
    assert run.data.trail == ["start", "double", "add"]
    assert run.data.result == 70


def check_branch(run: Run) -> None:
    join = run["join"].data
    assert join.seen_order == ["a", "b", "c"]
    assert join.by_name == [11, 12, 13]
    assert join.by_index == [11, 12, 13]
    assert join.count == 3
    assert run.data.total == 36


def check_nested_branch(run: Run) -> None:
    assert run["inner_join"].data.inner_order == ["inner_x", "inner_y"]
    assert run["inner_join"].data.val == 25
    assert run["outer_join"].data.seen_order == ["outer_b", "inner_join"]
    assert run["outer_join"].data.total == 125


def check_foreach(run: Run) -> None:
    join = run["join"].data
    assert join.squares == [100, 400, 900, 1600]
    assert join.positions == [0, 1, 2, 3]
    assert [t.data.sq for t in run["body"]] == [100, 400, 900, 1600]


def check_nested_foreach(run: Run) -> None:
    leaves = list(run["leaf"])
    assert [t.data.label for t in leaves] == ["a1", "a2", "a3", "b1", "b2", "b3"]
    assert [t.data.stack for t in leaves] == [[(o, 2), (i, 3)] for o in range(2) for i in range(3)]
    assert [t.data.labels for t in run["inner_join"]] == [["a1", "a2", "a3"], ["b1", "b2", "b3"]]
    assert run["outer_join"].data.all_labels == [["a1", "a2", "a3"], ["b1", "b2", "b3"]]


def check_split_in_foreach(run: Run) -> None:
    assert [t.data.sides for t in run["body_join"]] == [["left", "right"]] * 3
    assert [t.data.v for t in run["body_join"]] == [110, 220, 330]
    assert run["join"].data.values == [110, 220, 330]
    assert run["join"].data.all_sides == [["left", "right"]] * 3


def check_multi_step_foreach(run: Run) -> None:
    assert run["join"].data.values == [1, 3, 5, 7]
    assert run["join"].data.indices == [0, 1, 2, 3]
    assert [t.data.v for t in run["second"]] == [4, 6, 8, 10]


def check_multi_step_branch(run: Run) -> None:
    assert run["join"].data.seen_order == ["long", "short"]
    assert run["long3"].data.v == 22
    assert run["join"].data.total == 27


def check_foreach_in_branch(run: Run) -> None:
    assert run["fan_join"].data.squares == [1, 4, 9]
    assert run["join"].data.seen_order == ["fan", "plain"]
    assert run["join"].data.total == 114


def check_wide(run: Run) -> None:
    assert run["join"].data.count == shapes.WIDE
    assert run["join"].data.doubles == [2 * i for i in range(shapes.WIDE)]


SHAPES = {
    "linear": Shape(
        shapes.LinearShape,
        {"start": [N], "double": [N], "add": [N], "end": [N]},
        check_linear,
    ),
    "branch": Shape(
        shapes.BranchShape,
        {"start": [N], "a": [N], "b": [N], "c": [N], "join": [N], "end": [N]},
        check_branch,
        finishes_later=[("a", "b"), ("b", "c")],
    ),
    "nested-branches": Shape(
        shapes.NestedBranchShape,
        {
            "start": [N],
            "outer_b": [N],
            "outer_a": [N],
            "inner_x": [N],
            "inner_y": [N],
            "inner_join": [N],
            "outer_join": [N],
            "end": [N],
        },
        check_nested_branch,
        finishes_later=[("outer_b", "inner_join"), ("inner_x", "inner_y")],
    ),
    "foreach": Shape(
        shapes.ForeachShape,
        {"start": [N], "body": [0, 1, 2, 3], "join": [N], "end": [N]},
        check_foreach,
    ),
    "nested-foreach": Shape(
        shapes.NestedForeachShape,
        {
            "start": [N],
            "mid": [0, 1],
            "leaf": [0, 1, 2, 0, 1, 2],
            "inner_join": [0, 1],
            "outer_join": [N],
            "end": [N],
        },
        check_nested_foreach,
    ),
    "split-inside-foreach": Shape(
        shapes.SplitInForeachShape,
        {
            "start": [N],
            "body": [0, 1, 2],
            "left": [0, 1, 2],
            "right": [0, 1, 2],
            "body_join": [0, 1, 2],
            "join": [N],
            "end": [N],
        },
        check_split_in_foreach,
        finishes_later=[("left", "right")],
    ),
    "multi-step-foreach-body": Shape(
        shapes.MultiStepForeachShape,
        {
            "start": [N],
            "first": [0, 1, 2, 3],
            "second": [0, 1, 2, 3],
            "third": [0, 1, 2, 3],
            "join": [N],
            "end": [N],
        },
        check_multi_step_foreach,
    ),
    "multi-step-branches": Shape(
        shapes.MultiStepBranchShape,
        {
            "start": [N],
            "long1": [N],
            "long2": [N],
            "long3": [N],
            "short": [N],
            "join": [N],
            "end": [N],
        },
        check_multi_step_branch,
        finishes_later=[("long3", "short")],
    ),
    "foreach-inside-branch": Shape(
        shapes.ForeachInBranchShape,
        {
            "start": [N],
            "fan": [N],
            "each": [0, 1, 2],
            "fan_join": [N],
            "plain": [N],
            "join": [N],
            "end": [N],
        },
        check_foreach_in_branch,
        finishes_later=[("fan_join", "plain")],
    ),
    "wide-foreach-1000": Shape(
        shapes.WideForeachShape,
        {"start": [N], "body": list(range(shapes.WIDE)), "join": [N], "end": [N]},
        check_wide,
    ),
}


@pytest.fixture(params=list(SHAPES.values()), ids=list(SHAPES))
def shape(request: pytest.FixtureRequest) -> Shape:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def runs() -> dict[type[FlowSpec], tuple[Run, str]]:
    """Each shape runs once per module; its tests share the run (read-only checks)."""
    return {}


@pytest.fixture
def shape_run(
    shape: Shape,
    runs: dict[type[FlowSpec], tuple[Run, str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Run:
    if shape.flow not in runs:
        path = str(tmp_path_factory.mktemp("shapes") / "store.db")
        run = anyio.run(lambda: shape.flow(store=path, echo=False).run(), backend="asyncio")
        runs[shape.flow] = (run, path)
    return runs[shape.flow][0]


@pytest.fixture
def shape_store(shape: Shape, shape_run: Run, runs: dict[type[FlowSpec], tuple[Run, str]]) -> str:
    return runs[shape.flow][1]


def test_run_succeeds(shape: Shape, shape_run: Run, shape_store: str) -> None:
    assert shape_run.status == "succeeded"
    assert shape_run.successful and shape_run.finished
    with Flow(shape.flow.__name__, store=shape_store) as flow:
        latest = flow.latest_run
        assert latest is not None
        assert latest.id == shape_run.id
        assert latest.status == "succeeded"


def test_every_expected_task_exists(shape: Shape, shape_run: Run) -> None:
    got = {step.name: [task.index for task in step] for step in shape_run}
    assert got == shape.tasks
    for step in shape_run:
        for task in step:
            assert task.step_name == step.name
            assert task.successful, task.pathspec


def test_task_ids_are_unique_strings(shape: Shape, shape_run: Run) -> None:
    tasks = [task for step in shape_run for task in step]
    ids = [task.id for task in tasks]
    assert all(isinstance(i, str) for i in ids)
    assert len(set(ids)) == len(ids)
    assert isinstance(shape_run.id, str)
    for task in tasks:
        expected = f"{shape.flow.__name__}/{shape_run.id}/{task.step_name}/{task.id}"
        assert task.pathspec == expected


def test_values_and_join_order(shape: Shape, shape_run: Run) -> None:
    shape.check(shape_run)


def test_inputs_finished_in_reverse_order(shape: Shape, shape_run: Run) -> None:
    """The premise of the order checks: the first input really finished last."""
    for slow, fast in shape.finishes_later:
        assert min(finished(shape_run, slow)) > max(finished(shape_run, fast)), (slow, fast)
    # foreach bodies made lower indices slower: the first finished after the last
    staggered = {"foreach": "body", "nested-foreach": "leaf", "multi-step-foreach-body": "second"}
    for flow_step in staggered.items():
        if shape.flow is SHAPES[flow_step[0]].flow:
            times = finished(shape_run, flow_step[1])
            assert times[0] > times[-1]
