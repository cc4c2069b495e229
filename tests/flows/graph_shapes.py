"""Valid flows of every common shape, for the graph tests (plain classes, no FlowSpec yet)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from asyncflow._spec._step import step


def passthrough(func: Callable[..., Any]) -> Callable[..., Any]:
    """A decorator that wraps a step, as @retry or @catch would."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    return wrapper


class LinearFlow:
    """A straight line.

    Three steps, one after the other.
    """

    @step
    def start(self) -> None:
        """Begin."""
        self.x = 1
        self.next(self.middle)

    @passthrough
    @step
    async def middle(self) -> None:
        """Work on the loop.

        Second paragraph.
        """
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class BranchFlow:
    @step
    def start(self) -> None:
        self.next(self.a, self.b, self.c)

    @step
    def a(self) -> None:
        self.next(self.join)

    @step
    def b(self) -> None:
        self.next(self.join)

    @step
    def c(self) -> None:
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class MultiStepBranchFlow:
    """Branches of different lengths, defined so that definition order differs from next() order."""

    @step
    def start(self) -> None:
        self.next(self.long1, self.short)

    @step
    def short(self) -> None:
        self.next(self.join)

    @step
    def long2(self) -> None:
        self.next(self.long3)

    @step
    def long3(self) -> None:
        self.next(self.join)

    @step
    def long1(self) -> None:
        self.next(self.long2)

    @step
    def join(self, inputs: Any) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class NestedBranchFlow:
    @step
    def start(self) -> None:
        self.next(self.outer_b, self.outer_a)

    @step
    def outer_a(self) -> None:
        self.next(self.inner_x, self.inner_y)

    @step
    def inner_x(self) -> None:
        self.next(self.inner_join)

    @step
    def inner_y(self) -> None:
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs: Any) -> None:
        self.next(self.outer_join)

    @step
    def outer_b(self) -> None:
        self.next(self.outer_join)

    @step
    def outer_join(self, inputs: Any) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class ForeachFlow:
    @step
    def start(self) -> None:
        self.items = [1, 2, 3]
        self.next(self.body, foreach="items")

    @step
    def body(self) -> None:
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class NestedForeachFlow:
    @step
    def start(self) -> None:
        self.outer = ["a", "b"]
        self.next(self.mid, foreach="outer")

    @step
    def mid(self) -> None:
        self.inner = [1, 2]
        self.next(self.leaf, foreach="inner")

    @step
    def leaf(self) -> None:
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs: Any) -> None:
        self.next(self.outer_join)

    @step
    def outer_join(self, inputs: Any) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class SplitInForeachFlow:
    @step
    def start(self) -> None:
        self.items = [1, 2]
        self.next(self.body, foreach="items")

    @step
    def body(self) -> None:
        self.next(self.left, self.right)

    @step
    def left(self) -> None:
        self.next(self.body_join)

    @step
    def right(self) -> None:
        self.next(self.body_join)

    @step
    def body_join(self, inputs: Any) -> None:
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class MultiStepForeachFlow:
    @step
    def start(self) -> None:
        self.items = [1, 2]
        self.next(self.first, foreach="items")

    @step
    def first(self) -> None:
        self.next(self.second)

    @step
    def second(self) -> None:
        self.next(self.third)

    @step
    def third(self) -> None:
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class ForeachInBranchFlow:
    @step
    def start(self) -> None:
        self.next(self.fan, self.plain)

    @step
    def fan(self) -> None:
        self.items = [1, 2]
        self.next(self.each, foreach="items")

    @step
    def each(self) -> None:
        self.next(self.fan_join)

    @step
    def fan_join(self, inputs: Any) -> None:
        self.next(self.join)

    @step
    def plain(self) -> None:
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass
