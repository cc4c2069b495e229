"""Flows whose steps sleep, for the concurrency tests (which read the recorded task times)."""

from __future__ import annotations

import time
from typing import Any

import anyio

from asyncflow import FlowSpec, Parameter, step


class BranchesSleep(FlowSpec):
    """A split into a coroutine, a plain and a coroutine branch, each sleeping ``pause``."""

    pause = Parameter("pause", default=0.2)

    @step
    def start(self) -> None:
        self.next(self.a, self.b, self.c)

    @step
    async def a(self) -> None:
        await anyio.sleep(self.pause)
        self.next(self.join)

    @step
    def b(self) -> None:
        time.sleep(self.pause)
        self.next(self.join)

    @step
    async def c(self) -> None:
        await anyio.sleep(self.pause)
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class AsyncForeachSleep(FlowSpec):
    """``n`` coroutine tasks, each sleeping ``pause`` with anyio.sleep."""

    n = Parameter("n", default=4)
    pause = Parameter("pause", default=0.2)

    @step
    def start(self) -> None:
        self.items = list(range(self.n))
        self.next(self.body, foreach="items")

    @step
    async def body(self) -> None:
        await anyio.sleep(self.pause)
        self.out = self.input * 10
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.outs = [inp.out for inp in inputs]
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class ThreadForeachSleep(FlowSpec):
    """``n`` plain tasks, each blocking its thread for ``pause`` with time.sleep."""

    n = Parameter("n", default=4)
    pause = Parameter("pause", default=0.2)

    @step
    def start(self) -> None:
        self.items = list(range(self.n))
        self.next(self.body, foreach="items")

    @step
    def body(self) -> None:
        time.sleep(self.pause)
        self.out = self.input * 100
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.outs = [inp.out for inp in inputs]
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class MixedForeachSleep(FlowSpec):
    """A split into a foreach of coroutine tasks and a foreach of plain tasks."""

    n = Parameter("n", default=4)
    pause = Parameter("pause", default=0.1)

    @step
    def start(self) -> None:
        self.items = list(range(self.n))
        self.next(self.fan_async, self.fan_plain)

    @step
    def fan_async(self) -> None:
        self.next(self.body_async, foreach="items")

    @step
    async def body_async(self) -> None:
        await anyio.sleep(self.pause)
        self.next(self.join_async)

    @step
    def join_async(self, inputs: Any) -> None:
        self.next(self.join)

    @step
    def fan_plain(self) -> None:
        self.next(self.body_plain, foreach="items")

    @step
    def body_plain(self) -> None:
        time.sleep(self.pause)
        self.next(self.join_plain)

    @step
    def join_plain(self, inputs: Any) -> None:
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class BlockingStep(FlowSpec):
    """A plain step that blocks its thread for 0.3 s and records when (time.monotonic)."""

    @step
    async def start(self) -> None:
        self.next(self.block)

    @step
    def block(self) -> None:
        self.t0 = time.monotonic()
        time.sleep(0.3)
        self.t1 = time.monotonic()
        self.next(self.end)

    @step
    async def end(self) -> None:
        pass


class BusyCoroutines(FlowSpec):
    """``n`` coroutine tasks that never await, each busy for ``busy`` s (2 ms; time.monotonic)."""

    n = Parameter("n", default=300)
    busy = Parameter("busy", default=0.002)

    @step
    def start(self) -> None:
        self.items = list(range(self.n))
        self.next(self.body, foreach="items")

    @step
    async def body(self) -> None:
        self.t0 = time.monotonic()
        busy = self.busy
        while time.monotonic() - self.t0 < busy:
            pass
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.t0 = min(inp.t0 for inp in inputs)
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class SpinnersAndQuick(FlowSpec):
    """A foreach of ``n`` plain tasks: the first ``spinners`` compute (hold the GIL, never
    sleep) for ``seconds``, the rest are quick; each records when it ended."""

    n = Parameter("n", default=12)
    spinners = Parameter("spinners", default=2)
    seconds = Parameter("seconds", default=1.0)

    @step
    def start(self) -> None:
        self.items = list(range(self.n))
        self.next(self.body, foreach="items")

    @step
    def body(self) -> None:
        if self.input < self.spinners:
            until = time.monotonic() + self.seconds
            while time.monotonic() < until:
                sum(range(1000))
        self.ended = time.monotonic()
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.ended = [inp.ended for inp in inputs]
        self.next(self.end)

    @step
    def end(self) -> None:
        pass
