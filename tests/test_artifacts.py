"""The artifact rules of CONTRACT.md ("Artifacts" 1-7), one by one, on real store files."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from asyncflow import (
    ArtifactSerializationError,
    FlowSpec,
    MergeArtifactsError,
    Run,
    StepFailed,
)
from tests.flows import artifacts as af

NAMES = af.MERGE_NAMES


def names(task: Any) -> set[str]:
    return set(task.data)


def count(store: str, sql: str, params: tuple[Any, ...] = ()) -> int:
    conn = sqlite3.connect(store)
    try:
        return int(conn.execute(sql, params).fetchone()[0])
    finally:
        conn.close()


async def failing_run(flow: FlowSpec, **params: Any) -> StepFailed:
    with pytest.raises(StepFailed) as info:
        await flow.run(**params)
    return info.value


# --- 1. public attributes are persisted; _x, input and index are not --------------------------


@pytest.mark.anyio
async def test_public_attributes_are_persisted_private_input_index_are_not(store: str) -> None:
    run = await af.PersistFlow(store=store, echo=False).run()
    start = run["start"].task
    assert names(start) == {"public", "items"}
    assert start.data.public == "kept"
    bodies = list(run["body"])
    for task, item in zip(bodies, ["x", "y"], strict=True):
        assert names(task) == {"public", "items", "seen_input", "seen_index"}
        assert task.data.seen_input == item
        assert task.data.seen_index == task.index
    # a join starts with only the parameters (none here): nothing of start or body
    assert names(run["join"].task) == {"inputs_seen"}
    assert run["join"].data.inputs_seen == ["x", "y"]
    assert names(run["end"].task) == {"inputs_seen"}


@pytest.mark.anyio
async def test_a_failed_task_persists_nothing(store: str) -> None:
    exc = await failing_run(af.FailAfterSetFlow(store=store, echo=False))
    boom = exc.run["boom"].task
    assert not boom.successful
    assert "half_done" not in boom
    assert "half_done" not in boom.data
    assert exc.run["start"].data.before == 1


# --- 2. parents' artifacts are visible; unchanged ones pass by reference -----------------------


@pytest.mark.anyio
async def test_parent_artifacts_are_visible_after_a_split_and_in_a_foreach(store: str) -> None:
    run = await af.VisibilityFlow(store=store, echo=False).run()
    assert run["other"].data.other_saw == "from start"
    assert run["fan"].data.fan_saw == "from start"
    expected = [("from start", "from start", i) for i in (1, 2, 3)]
    assert [t.data.each_saw for t in run["each"]] == expected
    assert run["join"].data.each_saws == expected
    assert run["join"].data.other_saw == "from start"
    start_sha = run["start"].task["base"].sha
    for step in ("fan", "each", "other"):
        for task in run[step]:
            assert task["base"].sha == start_sha, task.pathspec


@pytest.mark.anyio
async def test_unchanged_artifacts_are_passed_by_reference(store: str) -> None:
    run = await af.ByReferenceFlow(store=store, echo=False).run()
    steps = ["start", "middle", "last", "end"]
    for name in ("numbers", "text", "obj"):
        shas = {run[step].task[name].sha for step in steps}
        assert len(shas) == 1, name
        rows = count(store, "SELECT count(*) FROM artifacts WHERE name = ?", (name,))
        distinct = count(store, "SELECT count(DISTINCT sha) FROM artifacts WHERE name = ?", (name,))
        assert (rows, distinct) == (4, 1), name
    # one blob per value ever set (numbers, text, obj, count), however many tasks hold them,
    # and the flow's source
    assert count(store, "SELECT count(*) FROM blobs") == 5
    assert count(store, "SELECT count(*) FROM blobs JOIN runs ON sha = source_sha") == 1
    assert run.data.count == 1000
    assert run.data.numbers == list(range(1000))


@pytest.mark.anyio
async def test_an_untouched_artifact_is_never_pickled_again_nor_loaded(store: str) -> None:
    af.Tracked.dumps = af.Tracked.loads = 0
    run = await af.TrackedCountsFlow(store=store, echo=False).run()
    dumps = run["middle"].data.dumps_in_middle
    assert dumps >= 1  # start's own commit pickled it
    assert run["end"].data.dumps_in_end == dumps
    assert af.Tracked.dumps == dumps  # no later task pickled it again
    assert run["middle"].data.loads_in_middle == 0
    assert run["end"].data.loads_in_end == 0
    assert af.Tracked.loads == 0  # no task unpickled it
    assert run.data.obj == af.Tracked(3)
    assert af.Tracked.loads == 1  # the client's read is the first


# --- 3. joins: inputs and merge_artifacts ------------------------------------------------------


async def merge_run(store: str, mode: str) -> Run:
    return await af.MergeFlow(store=store, echo=False).run(mode=mode)


@pytest.mark.anyio
async def test_join_reads_inputs_by_step_index_len_and_iteration(store: str) -> None:
    join = (await merge_run(store, "resolved"))["join"].data
    assert join.via_name == [1, 2]
    assert join.via_index == [1, 2]
    assert join.via_iteration == [1, 2]
    assert join.input_count == 2


@pytest.mark.anyio
async def test_merge_copies_equal_and_one_sided_values_and_skips_names_already_set(
    store: str,
) -> None:
    run = await merge_run(store, "resolved")
    join = run["join"].task
    assert join.data.error_names == []
    assert join.data.visible == list(NAMES)
    assert join.data.same == [1, 2]
    assert (join.data.only_a, join.data.only_b) == ("A", "B")
    assert join.data.diff == 2  # set before merging: kept, not a conflict
    assert join.data.diff2 == "mine"
    # merged by reference: the join holds the branches' blob
    assert join["same"].sha == run["a"].task["same"].sha == run["b"].task["same"].sha
    assert join["only_a"].sha == run["a"].task["only_a"].sha
    assert run.data.visible == list(NAMES)


@pytest.mark.anyio
async def test_merge_skips_a_name_already_set_even_if_the_inputs_agree(store: str) -> None:
    join = (await merge_run(store, "preset"))["join"].task
    assert join.data.error_names == []
    assert join.data.same == "mine"
    assert join.data.visible == ["pre", "same", "only_a", "only_b"]


@pytest.mark.anyio
async def test_a_join_starts_with_only_the_parameters(store: str) -> None:
    join = (await merge_run(store, "resolved"))["join"].task
    assert join.data.pre_before_merge is False  # set before the split, not on self yet
    assert join.data.mode_in_join == "resolved"  # parameters are
    assert join.data.pre == "set before the split"  # merged afterwards


@pytest.mark.anyio
async def test_merge_conflict_lists_every_name_and_sets_nothing(store: str) -> None:
    join = (await merge_run(store, "conflict"))["join"].task
    assert join.data.error_names == ["diff", "diff2"]
    assert "diff" in join.data.error_text and "diff2" in join.data.error_text
    assert join.data.visible == []  # not even the mergeable names
    assert not names(join) & set(NAMES)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("mode", "visible"),
    [
        ("include", ["same", "only_a"]),
        ("exclude", ["pre", "same", "only_a", "only_b"]),
    ],
)
async def test_merge_include_and_exclude(store: str, mode: str, visible: list[str]) -> None:
    join = (await merge_run(store, mode))["join"].task
    assert join.data.error_names == []
    assert join.data.visible == visible
    assert names(join) & set(NAMES) == set(visible)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("mode", "words"),
    [("include_missing", ["nope"]), ("include_and_exclude", ["include", "exclude"])],
)
async def test_merge_refuses_bad_arguments_and_sets_nothing(
    store: str, mode: str, words: list[str]
) -> None:
    join = (await merge_run(store, mode))["join"].task
    assert join.data.error_text, "merge_artifacts should have raised MergeArtifactsError"
    for word in words:
        assert word in join.data.error_text
    assert join.data.visible == []


@pytest.mark.anyio
async def test_an_uncaught_merge_conflict_fails_the_join(store: str) -> None:
    exc = await failing_run(af.MergeFlow(store=store, echo=False), mode="raise")
    assert isinstance(exc.__cause__, MergeArtifactsError)
    assert exc.__cause__.names == ("diff", "diff2")
    assert "/join/" in str(exc)
    assert exc.run.status == "failed"


@pytest.mark.anyio
async def test_merge_outside_a_join_raises(store: str) -> None:
    exc = await failing_run(af.MergeFlow(store=store, echo=False), mode="outside")
    assert isinstance(exc.__cause__, MergeArtifactsError)
    assert "join" in str(exc.__cause__)
    assert "/a/" in str(exc)


@pytest.mark.anyio
async def test_merge_after_a_foreach(store: str) -> None:
    run = await af.MergeForeachFlow(store=store, echo=False).run()
    join = run["join"].task
    assert join.data.total == 14
    assert join.data.sqs == [1, 4, 9]
    assert join.data.shared == {"k": 1}
    assert join.data.const == "c"
    assert join.data.items == [1, 2, 3]
    assert "sq" not in join
    assert join["shared"].sha == run["start"].task["shared"].sha


# --- 4. values keep their type -----------------------------------------------------------------


@pytest.mark.anyio
async def test_values_round_trip_with_their_types(store: str) -> None:
    run = await af.RoundTripFlow(store=store, echo=False).run()
    assert run["check_plain"].data.plain_problems == {}
    assert run["check_async"].data.async_problems == {}
    for step in ("start", "end"):
        task = run[step].task
        problems = [
            problem
            for name, value in af.sample_values().items()
            if (problem := af.difference(value, getattr(task.data, name), name))
        ]
        assert problems == [], step


def test_difference_helper_sees_type_changes() -> None:
    assert af.difference((1, 2), [1, 2]) is not None
    assert af.difference({1: "a"}, {"1": "a"}) is not None
    assert af.difference({True}, {1}) is not None
    assert af.difference(np.zeros(2, np.float32), np.zeros(2, np.float64)) is not None
    assert af.difference(np.zeros((2, 1)), np.zeros(2)) is not None
    assert af.difference([(1, 2)], [[1, 2]]) is not None
    assert af.difference(0.0, -0.0) is not None
    assert af.difference({"k": np.zeros(2)}, {"k": np.ones(2)}) is not None
    assert af.difference(af.Point(1, 2), af.Point(1, 3)) is not None
    assert af.difference(af.sample_values(), af.sample_values()) is None


@pytest.mark.anyio
async def test_stored_encodings_follow_the_contract(store: str) -> None:
    end = (await af.RoundTripFlow(store=store, echo=False).run())["end"].task
    assert end["bools_and_ints"].encoding == "msgpack"
    assert end["unicode"].encoding == "msgpack"
    assert end["nothing"].encoding == "msgpack"
    assert end["float32_2x3"].encoding == "numpy"
    assert end["uint8_3d"].encoding == "numpy"
    assert end["a_point"].encoding == "pickle"


# --- 5. in-place mutation never leaks ----------------------------------------------------------


@pytest.mark.anyio
async def test_in_place_mutation_is_saved_for_the_task_only(store: str) -> None:
    run = await af.MutateFlow(store=store, echo=False).run()
    start = run["start"].task
    assert start.data.lst == [1, 2, 3]  # the parent's stored value is the original
    assert start.data.cfg == {"k": [1]}
    assert start.data.arr.tolist() == [0.0, 0.0, 0.0]
    bodies = list(run["body"])
    # each task saw only its own change, though all mutated before any looked
    assert [t.data.seen_lst for t in bodies] == [[1, 2, 3, 10], [1, 2, 3, 11], [1, 2, 3]]
    assert [t.data.seen_cfg for t in bodies] == [{"k": [1, 0]}, {"k": [1, 1]}, {"k": [1]}]
    assert [t.data.seen_arr for t in bodies] == [[1, 0, 0], [0, 1, 0], [0, 0, 0]]
    # a task that mutated in place stored the new value as its own artifact
    assert [t.data.lst for t in bodies] == [[1, 2, 3, 10], [1, 2, 3, 11], [1, 2, 3]]
    assert [t.data.cfg for t in bodies] == [{"k": [1, 0]}, {"k": [1, 1]}, {"k": [1]}]
    assert [t.data.arr.tolist() for t in bodies] == [[1, 0, 0], [0, 1, 0], [0, 0, 0]]
    # the sibling that did not mutate still holds the parent's blob
    assert bodies[2]["lst"].sha == start["lst"].sha
    assert bodies[0]["lst"].sha != start["lst"].sha
    # downstream sees each task's own value
    assert run["join"].data.lsts == [[1, 2, 3, 10], [1, 2, 3, 11], [1, 2, 3]]
    assert run["after"].data.lst_after == [1, 2, 3, 10]


@pytest.mark.anyio
async def test_concurrent_threads_mutating_one_parent_list_do_not_see_each_other(
    store: str,
) -> None:
    run = await af.MutateThreadsFlow(store=store, echo=False).run()
    expected = [["start", f"task {i}"] for i in range(4)]
    assert [t.data.seen_lst for t in run["body"]] == expected
    assert [t.data.lst for t in run["body"]] == expected
    assert run["join"].data.lsts == expected
    assert run["start"].data.lst == ["start"]


@pytest.mark.anyio
async def test_mutating_a_large_chunked_array_in_place_never_leaks(store: str) -> None:
    run = await af.BigMutateFlow(store=store, echo=False).run()
    assert [t.data.seen for t in run["abody"]] == [[i] for i in range(4)]
    assert [t.data.seen for t in run["pbody"]] == [[i, 10 + i] for i in range(4)]
    assert run["join"].data.seen_join == [[i, 10 + i] for i in range(4)]
    start = run["start"].data.big
    assert start.shape == (af.BIG_ZEROS,) and not start.any()
    assert [np.flatnonzero(t.data.big).tolist() for t in run["abody"]] == [[i] for i in range(4)]


@pytest.mark.anyio
async def test_mutating_a_foreach_input_in_place_is_seen_by_no_other_task(store: str) -> None:
    run = await af.InputMutationFlow(store=store, echo=False).run()
    assert [t.data.left_saw for t in run["left"]] == [[1, "left"], [2, "left"]]
    # right ran at the same time, on the same element: it sees the original
    assert [t.data.right_saw for t in run["right"]] == [[1], [2]]
    # so does a later step of the same foreach element
    assert [t.data.later_saw for t in run["later"]] == [[1], [2]]
    # nested: each inner task mutates its copy of the outer element and of its own element
    assert [t.data.inner_saws for t in run["inner_join"]] == [
        [([1, "inner 0"], ["a", "mutated"]), ([1, "inner 1"], ["b", "mutated"])],
        [([2, "inner 0"], ["a", "mutated"]), ([2, "inner 1"], ["b", "mutated"])],
    ]
    assert [t.data.outer_after_inner for t in run["inner_join"]] == [[1], [2]]
    assert run["start"].data.items == [[1], [2]]


# --- 6. values that cannot be stored -----------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("what", "step", "artifact"),
    [
        ("self", "a", "me"),
        ("lock", "b", "guard"),
        ("inputs", "join", "kept"),
        ("one_input", "join", "first"),
    ],
)
async def test_unstorable_values_fail_the_task(
    store: str, what: str, step: str, artifact: str
) -> None:
    exc = await failing_run(af.UnstorableFlow(store=store, echo=False), what=what)
    cause = exc.__cause__
    assert isinstance(cause, ArtifactSerializationError)
    assert (cause.artifact, cause.step) == (artifact, step)
    assert repr(artifact) in str(cause) and repr(step) in str(cause)
    assert exc.run.status == "failed"
    failed = exc.run[step].task
    assert not failed.successful
    assert "ArtifactSerializationError" in (failed.exception or "")
    assert f"/{step}/{failed.id}" in str(exc)


# --- 7. parameters and IncludeFiles: readable everywhere, read-only ---------------------------


@pytest.mark.anyio
async def test_parameters_and_include_files_are_readable_in_every_step(
    store: str, tmp_path: Path
) -> None:
    text = "notes for\nevery step\n"
    notes = af.write_notes(tmp_path, text)
    run = await af.ParamsEverywhereFlow(store=store, echo=False).run(alpha=0.25, notes=notes)
    assert run["start"].data.seen_start == (0.25, text)
    assert [t.data.seen_body for t in run["body"]] == [(0.25, text)] * 2
    assert run["join"].data.seen_join == (0.25, text)
    assert run.data.seen_end == (0.25, text)
    # and they are artifacts of every task
    for step in run:
        for task in step:
            assert (task.data.alpha, task.data.notes) == (0.25, text), task.pathspec


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("where", "attr"),
    [("start", "alpha"), ("a", "notes"), ("join", "alpha"), ("end", "notes")],
)
async def test_parameters_and_include_files_are_read_only(
    store: str, tmp_path: Path, where: str, attr: str
) -> None:
    notes = af.write_notes(tmp_path)
    flow = af.ReadOnlyParamsFlow(store=store, echo=False)
    exc = await failing_run(flow, notes=notes, where=where, attr=attr)
    assert isinstance(exc.__cause__, AttributeError)
    assert "read-only" in str(exc.__cause__)
    assert attr in str(exc.__cause__)
    assert f"/{where}/" in str(exc)
    assert not exc.run[where].task.successful
