"""Flows whose first and last steps are marked with ``@step(start=True)`` / ``@step(end=True)``
(Metaflow 2.19), well and badly. Defined in a file so their source can be read."""

from __future__ import annotations

from typing import Any

from asyncflow import FlowSpec, current, step


class Marked(FlowSpec):
    """begin -> fan (foreach) -> work -> gather (join) -> finish."""

    @step(start=True)
    def begin(self) -> None:
        self.items = [1, 2, 3]
        self.names = [current.step_name]
        self.next(self.work, foreach="items")

    @step
    def work(self) -> None:
        self.doubled = self.input * 2
        self.next(self.gather)

    @step()
    def gather(self, inputs: Any) -> None:
        self.total = sum(i.doubled for i in inputs)
        self.names = inputs[0].names
        self.next(self.finish)

    @step(end=True)
    def finish(self) -> None:
        self.names = [*self.names, current.step_name]


class OneStep(FlowSpec):
    @step(start=True, end=True)
    def only(self) -> None:
        self.answer = 42


class MarkedStartNamedEnd(FlowSpec):
    """Only the first step is marked; the last is found by its name, as in Metaflow."""

    @step(start=True)
    def begin(self) -> None:
        self.x = 1
        self.next(self.end)

    @step
    def end(self) -> None:
        self.x += 1


class AsyncMarked(FlowSpec):
    @step(start=True)
    async def begin(self) -> None:
        self.x = 1
        self.next(self.finish)

    @step(end=True)
    async def finish(self) -> None:
        self.x += 1


# --- broken ---------------------------------------------------------------------------------


class TwoStarts(FlowSpec):
    @step(start=True)
    def a(self) -> None:
        self.next(self.b)

    @step(start=True)
    def b(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class TwoEnds(FlowSpec):
    @step
    def start(self) -> None:
        self.next(self.a, self.b)

    @step(end=True)
    def a(self) -> None:
        pass

    @step(end=True)
    def b(self) -> None:
        pass


class StartAndMarked(FlowSpec):
    @step
    def start(self) -> None:
        self.next(self.end)

    @step(start=True)
    def begin(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class EndAndMarked(FlowSpec):
    @step
    def start(self) -> None:
        self.next(self.finish)

    @step(end=True)
    def finish(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class MarkedStartJoins(FlowSpec):
    @step(start=True)
    def begin(self, inputs: Any) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class MarkedEndGoesOn(FlowSpec):
    @step
    def start(self) -> None:
        self.next(self.finish)

    @step(end=True)
    def finish(self) -> None:
        self.next(self.after)

    @step
    def after(self) -> None:
        pass


class MarkedEndJoins(FlowSpec):
    @step(start=True)
    def begin(self) -> None:
        self.next(self.a, self.b)

    @step
    def a(self) -> None:
        self.next(self.finish)

    @step
    def b(self) -> None:
        self.next(self.finish)

    @step(end=True)
    def finish(self, inputs: Any) -> None:
        pass


class MarkedEndMeets(FlowSpec):
    @step(start=True)
    def begin(self) -> None:
        self.next(self.a, self.b)

    @step
    def a(self) -> None:
        self.next(self.finish)

    @step
    def b(self) -> None:
        self.next(self.finish)

    @step(end=True)
    def finish(self) -> None:
        pass


class OneStepAndMore(FlowSpec):
    """start=True and end=True on one step, with another step left over."""

    @step(start=True, end=True)
    def only(self) -> None:
        pass

    @step
    def stray(self) -> None:
        self.next(self.only)


class MarkedEndOnly(FlowSpec):
    """end=True marked, but no first step at all."""

    @step
    def begin(self) -> None:
        self.next(self.finish)

    @step(end=True)
    def finish(self) -> None:
        pass


class MiddleStops(FlowSpec):
    @step(start=True)
    def begin(self) -> None:
        self.next(self.middle)

    @step
    def middle(self) -> None:
        pass

    @step(end=True)
    def finish(self) -> None:
        pass


class MarkedBreaks(FlowSpec):
    @step(start=True)
    def begin(self) -> None:
        raise RuntimeError("broken on purpose")
        self.next(self.finish)

    @step(end=True)
    def finish(self) -> None:
        pass
