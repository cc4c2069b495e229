"""A join wider than one batched read (``_inputs.LOAD_WINDOW``): every input's values, the
same errors, and values shared by many inputs decoded apart (each input its own copy)."""

from __future__ import annotations

from typing import Any

import pytest

from asyncflow import FlowSpec, Parameter, step
from asyncflow._errors import ArtifactNotFoundError
from asyncflow._runtime._inputs import LOAD_WINDOW

WIDTH = LOAD_WINDOW * 2 + 3


class WideJoin(FlowSpec):
    """``n`` tasks; each sets ``out`` (its own) and ``shared`` (equal in all); every 1,000th
    task leaves ``odd`` unset when ``gap`` is true."""

    n = Parameter("n", default=WIDTH)
    gap = Parameter("gap", default=False)

    @step
    def start(self) -> None:
        self.items = list(range(self.n))
        self.next(self.body, foreach="items")

    @step
    def body(self) -> None:
        self.out = self.input * 3
        self.shared = [1, 2, 3]
        if not (self.gap and self.input % 1000 == 999):
            self.odd = self.input
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.outs = [inp.out for inp in inputs]
        shared = [inp.shared for inp in inputs]
        shared[0].append(4)  # a copy of its own: no other input sees it
        self.others_untouched = all(s == [1, 2, 3] for s in shared[1:])
        self.last_first = inputs[len(inputs) - 1].out  # read again: from the column
        self.odds = sum(inp.odd for inp in inputs)
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


@pytest.mark.anyio
async def test_a_join_wider_than_one_read_sees_every_inputs_values(store: str) -> None:
    run = await WideJoin(store=store, echo=False).run()
    data = run["join"].data
    assert data.outs == [i * 3 for i in range(WIDTH)]
    assert data.others_untouched
    assert data.last_first == (WIDTH - 1) * 3
    assert data.odds == sum(range(WIDTH))


@pytest.mark.anyio
async def test_an_input_missing_the_artifact_past_the_first_read_is_named(store: str) -> None:
    with pytest.raises(Exception) as caught:
        await WideJoin(store=store, echo=False).run(gap=True)
    cause = caught.value.__cause__
    assert isinstance(cause, ArtifactNotFoundError), caught.value
    assert "has no artifact 'odd'" in str(cause)


class Views(FlowSpec):
    """A static split and a foreach; its joins record how their inputs' views behave."""

    @step
    def start(self) -> None:
        self.next(self.left, self.right)

    @step
    def left(self) -> None:
        self.side = "left"
        self.next(self.both)

    @step
    def right(self) -> None:
        self.side = "right"
        self.next(self.both)

    @step
    def both(self, inputs: Any) -> None:
        self.by_name = [inputs.left.side, inputs.right.side]
        self.same = inputs.left == inputs[0] and inputs.right == inputs[-1]
        self.differ = inputs[0] != inputs[1] and len({inputs[0], inputs[0], inputs[1]}) == 2
        self.next(self.split)

    @step
    def split(self) -> None:
        self.items = ["a", "b", "c"]
        self.next(self.each, foreach="items")

    @step
    def each(self) -> None:
        self.letter = self.input
        self.next(self.gather)

    @step
    def gather(self, inputs: Any) -> None:
        self.letters = [i.letter for i in inputs]
        self.negative = [inputs[-1].letter, inputs[-3].letter]
        self.sliced = [i.letter for i in inputs[1:]] + [i.letter for i in inputs[::-1]]
        self.twice = list(inputs) == list(inputs) and "letter" in inputs[2]
        self.kinds = sorted({repr(i) for i in inputs})
        try:
            inputs[3]
        except IndexError:
            self.out_of_range = True
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


@pytest.mark.anyio
async def test_views_made_on_demand_index_slice_compare_and_read_as_a_list_would(
    store: str,
) -> None:
    run = await Views(store=store, echo=False).run()
    both, gather = run["both"].data, run["gather"].data
    assert both.by_name == ["left", "right"]
    assert both.same and both.differ
    assert gather.letters == ["a", "b", "c"]
    assert gather.negative == ["c", "a"]
    assert gather.sliced == ["b", "c", "c", "b", "a"]
    assert gather.twice and gather.out_of_range
    assert gather.kinds == ["<input from step 'each'>"]
