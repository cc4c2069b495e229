"""One runnable flow per graph shape, for the scheduler tests.

Every flow computes values through its graph, so a test can check the numbers that come out
of the end, and every join records the order in which it saw its inputs. Where a join must
order its inputs, the *first* ``next()`` target (or the *lowest* foreach index) is made the
slowest, so the inputs finish in the reverse of the order the join must present them in.
Steps alternate between coroutines and plain functions to cover both executors.
"""

from __future__ import annotations

import time
from typing import Any

import anyio

from asyncflow import FlowSpec, step

SLOW = 0.2
MEDIUM = 0.1
STAGGER = 0.03  # per foreach index: index i sleeps (n - 1 - i) * STAGGER


def reverse_delay(index: int, count: int) -> float:
    """A sleep that makes foreach task ``index`` of ``count`` finish after every later one."""
    return (count - 1 - index) * STAGGER


class LinearShape(FlowSpec):
    """start -> double -> add -> end, each step changing x."""

    @step
    async def start(self) -> None:
        self.x = 3
        self.trail = ["start"]
        self.next(self.double)

    @step
    def double(self) -> None:
        self.x = self.x * 2
        self.trail = [*self.trail, "double"]
        self.next(self.add)

    @step
    async def add(self) -> None:
        self.x = self.x + 1
        self.trail = [*self.trail, "add"]
        self.next(self.end)

    @step
    def end(self) -> None:
        self.result = self.x * 10


class BranchShape(FlowSpec):
    """A static split into a (slowest), b (slower) and c (fast)."""

    @step
    def start(self) -> None:
        self.base = 10
        self.next(self.a, self.b, self.c)

    @step
    async def a(self) -> None:
        await anyio.sleep(SLOW)
        self.tag = "a"
        self.val = self.base + 1
        self.next(self.join)

    @step
    def b(self) -> None:
        time.sleep(MEDIUM)
        self.tag = "b"
        self.val = self.base + 2
        self.next(self.join)

    @step
    async def c(self) -> None:
        self.tag = "c"
        self.val = self.base + 3
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.seen_order = [inp.tag for inp in inputs]
        self.by_name = [inputs.a.val, inputs.b.val, inputs.c.val]
        self.by_index = [inputs[k].val for k in range(len(inputs))]
        self.count = len(inputs)
        self.next(self.end)

    @step
    async def end(self) -> None:
        self.total = sum(self.by_name)


class NestedBranchShape(FlowSpec):
    """A split whose second branch splits again; both first targets are the slow ones."""

    @step
    async def start(self) -> None:
        self.next(self.outer_b, self.outer_a)

    @step
    async def outer_b(self) -> None:
        await anyio.sleep(SLOW)
        self.tag = "outer_b"
        self.val = 100
        self.next(self.outer_join)

    @step
    def outer_a(self) -> None:
        self.k = 5
        self.next(self.inner_x, self.inner_y)

    @step
    def inner_x(self) -> None:
        time.sleep(MEDIUM)
        self.tag = "inner_x"
        self.val = self.k * 2
        self.next(self.inner_join)

    @step
    async def inner_y(self) -> None:
        self.tag = "inner_y"
        self.val = self.k * 3
        self.next(self.inner_join)

    @step
    async def inner_join(self, inputs: Any) -> None:
        self.inner_order = [inp.tag for inp in inputs]
        self.tag = "inner_join"
        self.val = inputs.inner_x.val + inputs.inner_y.val
        self.next(self.outer_join)

    @step
    def outer_join(self, inputs: Any) -> None:
        self.seen_order = [inp.tag for inp in inputs]
        self.total = inputs.outer_b.val + inputs.inner_join.val
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class ForeachShape(FlowSpec):
    """One foreach; lower indices finish last."""

    @step
    def start(self) -> None:
        self.items = [10, 20, 30, 40]
        self.next(self.body, foreach="items")

    @step
    async def body(self) -> None:
        await anyio.sleep(reverse_delay(self.index, len(self.items)))
        self.sq = self.input * self.input
        self.pos = self.index
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.squares = [inp.sq for inp in inputs]
        self.positions = [inp.pos for inp in inputs]
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class NestedForeachShape(FlowSpec):
    """A foreach over letters, each a foreach over numbers."""

    @step
    async def start(self) -> None:
        self.outer = ["a", "b"]
        self.next(self.mid, foreach="outer")

    @step
    def mid(self) -> None:
        self.letter = self.input
        self.inner = [1, 2, 3]
        self.next(self.leaf, foreach="inner")

    @step
    async def leaf(self) -> None:
        await anyio.sleep(reverse_delay(self.index, len(self.inner)))
        self.label = f"{self.letter}{self.input}"
        self.stack = [(i, n) for i, n, _ in self.foreach_stack()]
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs: Any) -> None:
        self.labels = [inp.label for inp in inputs]
        self.next(self.outer_join)

    @step
    async def outer_join(self, inputs: Any) -> None:
        self.all_labels = [inp.labels for inp in inputs]
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class SplitInForeachShape(FlowSpec):
    """Each foreach task splits into left (slow) and right, joined inside the foreach."""

    @step
    def start(self) -> None:
        self.items = [1, 2, 3]
        self.next(self.body, foreach="items")

    @step
    async def body(self) -> None:
        self.v = self.input
        self.next(self.left, self.right)

    @step
    async def left(self) -> None:
        await anyio.sleep(MEDIUM + reverse_delay(self.index, 3))
        self.side = "left"
        self.out = self.v * 10
        self.next(self.body_join)

    @step
    def right(self) -> None:
        self.side = "right"
        self.out = self.v * 100
        self.next(self.body_join)

    @step
    def body_join(self, inputs: Any) -> None:
        self.sides = [inp.side for inp in inputs]
        self.v = inputs.left.out + inputs.right.out
        self.next(self.join)

    @step
    async def join(self, inputs: Any) -> None:
        self.values = [inp.v for inp in inputs]
        self.all_sides = [inp.sides for inp in inputs]
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class MultiStepForeachShape(FlowSpec):
    """A foreach body of three steps, each transforming v."""

    @step
    def start(self) -> None:
        self.items = [1, 2, 3, 4]
        self.next(self.first, foreach="items")

    @step
    def first(self) -> None:
        self.v = self.input + 1
        self.next(self.second)

    @step
    async def second(self) -> None:
        await anyio.sleep(reverse_delay(self.index, 4))
        self.v = self.v * 2
        self.next(self.third)

    @step
    def third(self) -> None:
        self.v = self.v - 3
        self.seen_index = self.index
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.values = [inp.v for inp in inputs]
        self.indices = [inp.seen_index for inp in inputs]
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class MultiStepBranchShape(FlowSpec):
    """A split into a three-step branch (first target, slow) and a one-step branch."""

    @step
    def start(self) -> None:
        self.next(self.long1, self.short)

    @step
    def short(self) -> None:
        self.tag = "short"
        self.v = 5
        self.next(self.join)

    @step
    async def long2(self) -> None:
        await anyio.sleep(SLOW)
        self.v = self.v + 10
        self.next(self.long3)

    @step
    def long3(self) -> None:
        self.v = self.v * 2
        self.next(self.join)

    @step
    async def long1(self) -> None:
        self.tag = "long"
        self.v = 1
        self.next(self.long2)

    @step
    def join(self, inputs: Any) -> None:
        self.seen_order = [inp.tag for inp in inputs]
        self.total = inputs.long3.v + inputs.short.v
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class ForeachInBranchShape(FlowSpec):
    """A split whose first (slow) branch is a foreach."""

    @step
    def start(self) -> None:
        self.next(self.fan, self.plain)

    @step
    async def fan(self) -> None:
        await anyio.sleep(MEDIUM)
        self.items = [1, 2, 3]
        self.next(self.each, foreach="items")

    @step
    def each(self) -> None:
        time.sleep(reverse_delay(self.index, 3))
        self.sq = self.input * self.input
        self.next(self.fan_join)

    @step
    async def fan_join(self, inputs: Any) -> None:
        self.squares = [inp.sq for inp in inputs]
        self.tag = "fan"
        self.val = sum(self.squares)
        self.next(self.join)

    @step
    def plain(self) -> None:
        self.tag = "plain"
        self.val = 100
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.seen_order = [inp.tag for inp in inputs]
        self.total = inputs.fan_join.val + inputs.plain.val
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


WIDE = 1000


class WideForeachShape(FlowSpec):
    """A foreach of 1,000 plain tasks."""

    @step
    def start(self) -> None:
        self.items = list(range(WIDE))
        self.next(self.body, foreach="items")

    @step
    def body(self) -> None:
        self.double = self.input * 2
        self.next(self.join)

    @step
    async def join(self, inputs: Any) -> None:
        self.doubles = [inp.double for inp in inputs]
        self.count = len(inputs)
        self.next(self.end)

    @step
    def end(self) -> None:
        pass
