"""``self.input``, ``self.index`` and artifact reads in a step: their fast path (a property
whose C getter reads a private twin kept in the instance's ``__dict__`` after the first read)
gives what the slow path gave: the same values, the task's own copy, the same errors."""

from __future__ import annotations

import pytest

from asyncflow import ArtifactNotFoundError, FlowSpec, step
from tests.flows import step_reads as sr


@pytest.mark.anyio
async def test_input_and_index_read_the_innermost_frame_or_none(store: str) -> None:
    run = await sr.InputReadsFlow(store=store, echo=False).run()
    assert run["start"].data.outside == (None, None, None, None)
    bodies = list(run["body"])
    assert [t.data.seen_index for t in bodies] == [(0, 0), (1, 1)]
    assert all(t.data.same_object and t.data.stack_agrees for t in bodies)
    assert [t.data.join_reads for t in run["join"]] == [(None, None)]


@pytest.mark.anyio
async def test_each_task_reads_its_own_copy_of_the_element(store: str) -> None:
    run = await sr.InputReadsFlow(store=store, echo=False).run()
    assert [t.data.seen for t in run["body"]] == [[1, "mine"], [2, "mine"]]
    # the next task of the same element starts from the stored element, not body's copy
    assert [t.data.coro_seen for t in run["coro"]] == [([1], 0, 0), ([2], 1, 1)]
    assert [t.data.coro_after for t in run["coro"]] == [[1, "coro"], [2, "coro"]]
    assert run["start"].data.items == [[1], [2]]


@pytest.mark.anyio
async def test_input_and_index_are_neither_settable_nor_stored(store: str) -> None:
    run = await sr.InputReadsFlow(store=store, echo=False).run()
    body = next(iter(run["body"]))
    for name in ("input", "index"):
        error = body.data.set_input_error if name == "input" else body.data.set_index_error
        assert error == (
            f"cannot set self.{name} in InputReadsFlow: {name!r} is used by asyncflow; store "
            f"the value under another name, such as self.{name}_value."
        )
    # what the step's instance holds, besides asyncflow's private names: its own artifacts
    assert body.data.own_names == [
        "same_object",
        "seen",
        "seen_index",
        "set_index_error",
        "set_input_error",
        "stack_agrees",
    ]
    assert set(body.data) == {
        "items",
        "outside",
        "same_object",
        "stack_agrees",
        "seen",
        "seen_index",
        "set_input_error",
        "set_index_error",
        "own_names",
    }


@pytest.mark.anyio
async def test_a_retried_attempt_reads_a_fresh_copy(store: str) -> None:
    run = await sr.RetriedInputFlow(store=store, echo=False).run()
    assert run["join"].data.seen == ["element", "attempt 1"]
    assert run["start"].data.items == [["element"]]


def test_outside_a_running_step_input_index_and_artifacts_raise_as_before(store: str) -> None:
    flow = sr.InputReadsFlow(store=store, echo=False)
    for name in ("input", "index", "items"):
        with pytest.raises(AttributeError) as info:
            getattr(flow, name)
        assert str(info.value) == (
            f"'InputReadsFlow' object has no attribute {name!r}; artifacts are only readable "
            "inside a running step (use asyncflow.Flow to read stored runs)"
        )
    with pytest.raises(AttributeError, match="names starting with '_' are not artifacts"):
        flow._af_input  # noqa: B018


class UnknownNameFlow(FlowSpec):
    @step
    def start(self) -> None:
        self.known = 1
        self.next(self.end)

    @step
    def end(self) -> None:
        assert self.known == 1
        try:
            self.unknown  # noqa: B018
        except ArtifactNotFoundError as exc:
            self.error = (type(exc).__name__, isinstance(exc, AttributeError), str(exc))


@pytest.mark.anyio
async def test_an_unknown_name_raises_artifact_not_found(store: str) -> None:
    run = await UnknownNameFlow(store=store, echo=False).run()
    kind, is_attribute_error, text = run["end"].data.error
    assert (kind, is_attribute_error) == ("ArtifactNotFoundError", True)
    assert text.startswith("step 'end' of UnknownNameFlow has no artifact 'unknown'")
