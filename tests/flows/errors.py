"""Flows that fail at run time, and one that is invalid, for the runtime error tests."""

from __future__ import annotations

import sys
from typing import Any

import anyio

from asyncflow import FlowSpec, Parameter, retry, step


class BoomFlow(FlowSpec):
    """``where`` names the step that raises: ``work`` (plain) or ``awork`` (a coroutine)."""

    where = Parameter("where", default="work")

    @step
    async def start(self) -> None:
        self.ready = True
        self.next(self.work)

    @step
    def work(self) -> None:
        print("work is about to fail")
        if self.where == "work":
            raise ValueError("kaboom from work 42")
        self.next(self.awork)

    @step
    async def awork(self) -> None:
        await anyio.sleep(0)
        if self.where == "awork":
            raise KeyError("kaboom from awork")
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class ExitFlow(FlowSpec):
    """A step calls sys.exit(): ``work`` (plain) or ``awork`` (a coroutine), per ``where``."""

    where = Parameter("where", default="work")

    @step
    def start(self) -> None:
        self.next(self.work)

    @step
    def work(self) -> None:
        if self.where == "work":
            sys.exit(3)
        self.next(self.awork)

    @step
    async def awork(self) -> None:
        if self.where == "awork":
            sys.exit(4)
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class StepsOwnBaseError(BaseException):
    """A step's own BaseException subclass (not an Exception)."""


BASE_ERRORS: dict[str, BaseException] = {
    "base": BaseException("bare base"),
    "generator-exit": GeneratorExit("closed early"),
    "own": StepsOwnBaseError("its own"),
    "interrupt": KeyboardInterrupt("raised by the step"),
}


class BaseRaiseFlow(FlowSpec):
    """The step ``where`` raises ``BASE_ERRORS[kind]``: ``work`` (plain, the fast path),
    ``rwork`` (plain with @retry: the managed path) or ``awork`` (a coroutine)."""

    where = Parameter("where", default="work")
    kind = Parameter("kind", default="base")

    @step
    def start(self) -> None:
        self.next(self.work)

    @step
    def work(self) -> None:
        if self.where == "work":
            raise BASE_ERRORS[self.kind]
        self.next(self.rwork)

    @retry(times=1)
    @step
    def rwork(self) -> None:
        if self.where == "rwork":
            raise BASE_ERRORS[self.kind]
        self.next(self.awork)

    @step
    async def awork(self) -> None:
        if self.where == "awork":
            raise BASE_ERRORS[self.kind]
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class ForeachBoomFlow(FlowSpec):
    """The foreach task with index 1 raises."""

    @step
    def start(self) -> None:
        self.items = [0, 1, 2]
        self.next(self.body, foreach="items")

    @step
    def body(self) -> None:
        if self.input == 1:
            raise RuntimeError(f"task {self.index} failed")
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class NextTwiceFlow(FlowSpec):
    """start calls next() in a helper, then again as its last statement."""

    @step
    def start(self) -> None:
        self._go()
        self.next(self.end)

    def _go(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class NextSkippedFlow(FlowSpec):
    """start returns before its next() when ``skip`` is set."""

    skip = Parameter("skip", default=True)

    @step
    def start(self) -> None:
        if self.skip:
            return
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class NextElsewhereFlow(FlowSpec):
    """start's source ends with next(self.a); a helper jumps to b instead when ``jump``."""

    jump = Parameter("jump", default=True)

    @step
    async def start(self) -> None:
        if self.jump:
            self._jump()
            return
        self.next(self.a)

    def _jump(self) -> None:
        self.next(self.b)

    @step
    def a(self) -> None:
        self.next(self.b)

    @step
    def b(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class EndCallsNextFlow(FlowSpec):
    """end calls next() through a helper (the AST sees no next() there)."""

    @step
    def start(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        self._again()

    def _again(self) -> None:
        self.next(self.start)


class ForeachOverFlow(FlowSpec):
    """start's foreach artifact is missing, not iterable, empty or None, as ``kind`` says."""

    kind = Parameter("kind", default="missing")

    @step
    def start(self) -> None:
        if self.kind == "int":
            self.things = 5
        elif self.kind == "empty":
            self.things = []
        elif self.kind == "none":
            self.things = None
        elif self.kind == "ok":
            self.things = [1, 2]
        self.next(self.body, foreach="things")

    @step
    def body(self) -> None:
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class ForeachOverInheritedFlow(FlowSpec):
    """The foreach artifact comes from an earlier step (``mid`` does not set it)."""

    @step
    def start(self) -> None:
        self.things = "ab"
        self.next(self.mid)

    @step
    def mid(self) -> None:
        self.next(self.body, foreach="things")

    @step
    def body(self) -> None:
        self.letter = self.input
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.letters = [inp.letter for inp in inputs]
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class InvalidFlow(FlowSpec):
    """Invalid: ``middle`` never calls self.next()."""

    @step
    def start(self) -> None:
        self.next(self.middle)

    @step
    def middle(self) -> None:
        self.x = 1

    @step
    def end(self) -> None:
        pass
