"""Flows that break the graph rules, one per line of docs/errors.md (G01-G34).

Each is refused before it runs; the error names the step and a ``file:line`` in this file.
"""

from __future__ import annotations

from typing import Any

from asyncflow import FlowSpec, catch, step


class Alias(FlowSpec):
    """G01: a step assigned to a second name."""

    @step
    def start(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass

    finish = end


class Base(FlowSpec):
    """G02: a base class with a plain method ..."""

    def helper(self) -> None:
        pass


class Hides(Base):
    """G02: ... which a step of the subclass hides."""

    @step
    def start(self) -> None:
        self.next(self.helper)

    @step  # type: ignore[misc]
    def helper(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class Branchy(FlowSpec):
    """G05."""

    @step
    def start(self) -> None:
        if self.index:
            self.next(self.end)
        else:
            self.next(self.end)

    @step
    def end(self) -> None:
        pass


class Twice(FlowSpec):
    """G06."""

    @step
    def start(self) -> None:
        self.next(self.end)
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class Early(FlowSpec):
    """G07."""

    @step
    def start(self) -> None:
        self.next(self.end)
        self.x = 1

    @step
    def end(self) -> None:
        pass


class Dynamic(FlowSpec):
    """G08."""

    @step
    def start(self) -> None:
        targets = [self.end]
        self.next(*targets)

    @step
    def end(self) -> None:
        pass


class Nowhere(FlowSpec):
    """G09."""

    @step
    def start(self) -> None:
        self.next()

    @step
    def end(self) -> None:
        pass


class Keyword(FlowSpec):
    """G10."""

    @step
    def start(self) -> None:
        self.next(self.end, other=1)  # type: ignore[call-arg]

    @step
    def end(self) -> None:
        pass


class Variable(FlowSpec):
    """G11."""

    @step
    def start(self) -> None:
        name = "items"
        self.next(self.end, foreach=name)

    @step
    def end(self) -> None:
        pass


class Private(FlowSpec):
    """G12."""

    @step
    def start(self) -> None:
        self.next(self._hidden)

    @step
    def _hidden(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class Reserved(FlowSpec):
    """G13."""

    @step
    def start(self) -> None:
        self.next(self.index)  # type: ignore[arg-type]

    @step  # type: ignore[misc]
    def index(self) -> None:  # type: ignore[override]
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class NoStart(FlowSpec):
    """G14."""

    @step
    def begin(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class StartJoins(FlowSpec):
    """G15."""

    @step
    def start(self, inputs: Any) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class EndGoesOn(FlowSpec):
    """G16."""

    @step
    def start(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        self.next(self.start)


class EndJoins(FlowSpec):
    """G17."""

    @step
    def start(self) -> None:
        self.next(self.end)

    @step
    def end(self, inputs: Any) -> None:
        pass


class Stops(FlowSpec):
    """G18."""

    @step
    def start(self) -> None:
        self.next(self.middle)

    @step
    def middle(self) -> None:
        self.x = 1

    @step
    def end(self) -> None:
        pass


class Typo(FlowSpec):
    """G19."""

    @step
    def start(self) -> None:
        self.next(self.trian)  # type: ignore[attr-defined]

    @step
    def train(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class Doubled(FlowSpec):
    """G20."""

    @step
    def start(self) -> None:
        self.next(self.a, self.a)

    @step
    def a(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class WideForeach(FlowSpec):
    """G21."""

    @step
    def start(self) -> None:
        self.next(self.a, self.b, foreach="items")

    @step
    def a(self) -> None:
        self.next(self.end)

    @step
    def b(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class BadVar(FlowSpec):
    """G22."""

    @step
    def start(self) -> None:
        self.next(self.a, foreach="my items")

    @step
    def a(self) -> None:
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class Loop(FlowSpec):
    """G23."""

    @step
    def start(self) -> None:
        self.next(self.a)

    @step
    def a(self) -> None:
        self.next(self.b)

    @step
    def b(self) -> None:
        self.next(self.a)

    @step
    def end(self) -> None:
        pass


class Orphan(FlowSpec):
    """G24."""

    @step
    def start(self) -> None:
        self.next(self.end)

    @step
    def orphan(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class EndMeets(FlowSpec):
    """G25."""

    @step
    def start(self) -> None:
        self.next(self.a, self.b)

    @step
    def a(self) -> None:
        self.next(self.end)

    @step
    def b(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class NoInputs(FlowSpec):
    """G26."""

    @step
    def start(self) -> None:
        self.next(self.a, self.b)

    @step
    def a(self) -> None:
        self.next(self.merge)

    @step
    def b(self) -> None:
        self.next(self.merge)

    @step
    def merge(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class JoinSplits(FlowSpec):
    """G27."""

    @step
    def start(self) -> None:
        self.next(self.a, self.b)

    @step
    def a(self) -> None:
        self.next(self.join)

    @step
    def b(self) -> None:
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.next(self.c, self.d)

    @step
    def c(self) -> None:
        self.next(self.join2)

    @step
    def d(self) -> None:
        self.next(self.join2)

    @step
    def join2(self, inputs: Any) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class Unjoined(FlowSpec):
    """G28."""

    @step
    def start(self) -> None:
        self.next(self.body, foreach="items")

    @step
    def body(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class Lonely(FlowSpec):
    """G29."""

    @step
    def start(self) -> None:
        self.next(self.middle)

    @step
    def middle(self, inputs: Any) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class Tangled(FlowSpec):
    """G30."""

    @step
    def start(self) -> None:
        self.next(self.a, self.b)

    @step
    def a(self) -> None:
        self.next(self.a1, self.a2)

    @step
    def a1(self) -> None:
        self.next(self.join)

    @step
    def a2(self) -> None:
        self.next(self.join)

    @step
    def b(self) -> None:
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class Shortcut(FlowSpec):
    """G31."""

    @step
    def start(self) -> None:
        self.next(self.a, self.join)

    @step
    def a(self) -> None:
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class Missing(FlowSpec):
    """G32."""

    @step
    def start(self) -> None:
        self.next(self.a, self.b)

    @step
    def a(self) -> None:
        self.next(self.join)

    @step
    def b(self) -> None:
        self.next(self.join2)

    @step
    def join(self, inputs: Any) -> None:
        self.next(self.join2)

    @step
    def join2(self, inputs: Any) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class CaughtSplit(FlowSpec):
    """G33."""

    @catch(var="error")
    @step
    def start(self) -> None:
        self.items = [1]
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


class Broken(FlowSpec):
    """G34."""

    @step
    def start(self) -> None:
        self.next(self.nope)  # type: ignore[attr-defined]

    @step
    def end(self, inputs: Any) -> None:
        pass
