"""Flows for the resume and cancellation tests.

Every step appends a line to the file named by the ``log`` parameter when its code runs
(``step`` or ``step:index``), so a test can tell which tasks really ran and which were cloned.
A task fails when its key is a line of the file named by ``fail``: delete the file (or a
line) and the same parameters succeed on resume.

Run as a script, the first argument names the flow: ``python resume_flows.py SleepyFlow run``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

from asyncflow import FlowSpec, Parameter, catch, current, retry, step


def touch(flow: Any, key: str) -> None:
    """Note that ``key`` ran; fail if ``key`` is a line of the fail file."""
    with open(flow.log, "a") as fh:
        fh.write(key + "\n")
    if flow.fail and os.path.exists(flow.fail):
        with open(flow.fail) as fh:
            if key in fh.read().split():
                raise RuntimeError(f"planned failure at {key}")


def ran(log: str) -> list[str]:
    """The keys written to ``log``, in order."""
    if not os.path.exists(log):
        return []
    with open(log) as fh:
        return fh.read().split()


class LinearFlow(FlowSpec):
    """start -> a -> b -> c -> end, coroutine and plain steps mixed."""

    log = Parameter("log", default="")
    fail = Parameter("fail", default="")
    factor = Parameter("factor", default=3)

    @step
    def start(self) -> None:
        touch(self, "start")
        print("start says hi")
        print("start warns", file=sys.stderr)
        self.x = 1
        self.big = list(range(5000))
        self.next(self.a)

    @step
    async def a(self) -> None:
        touch(self, "a")
        await asyncio.sleep(0)
        self.y = self.x + 1
        self.origin_seen = current.origin_run_id
        self.next(self.b)

    @step
    def b(self) -> None:
        touch(self, "b")
        print("b says hi")
        self.z = self.y * self.factor
        self.origin_seen = current.origin_run_id
        self.next(self.c)

    @step
    async def c(self) -> None:
        touch(self, "c")
        self.w = self.z + 100
        self.origin_seen = current.origin_run_id
        self.next(self.end)

    @step
    def end(self) -> None:
        touch(self, "end")
        self.total = self.w + len(self.big)


class ForeachFlow(FlowSpec):
    """A foreach of ``width`` splits; the join records what it saw, in order."""

    log = Parameter("log", default="")
    fail = Parameter("fail", default="")
    width = Parameter("width", default=10)

    @step
    async def start(self) -> None:
        touch(self, "start")
        self.items = [f"item{i}" for i in range(self.width)]
        self.next(self.body, foreach="items")

    @step
    def body(self) -> None:
        touch(self, f"body:{self.index}")
        self.label = f"{self.input}@{self.index}"
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        touch(self, "join")
        self.labels = [inp.label for inp in inputs]
        self.next(self.end)

    @step
    async def end(self) -> None:
        touch(self, "end")


class SetForeachFlow(FlowSpec):
    """A foreach over a set of strings (whose iteration order depends on the hash seed)."""

    log = Parameter("log", default="")
    fail = Parameter("fail", default="")

    @step
    def start(self) -> None:
        touch(self, "start")
        self.words = {"pear", "apple", "fig", "kiwi", "plum", "lime"}
        self.next(self.body, foreach="words")

    @step
    def body(self) -> None:
        touch(self, f"body:{self.index}")
        self.pair = (self.index, self.input)
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        touch(self, "join")
        self.pairs = [inp.pair for inp in inputs]
        self.next(self.end)

    @step
    def end(self) -> None:
        touch(self, "end")


class CancelFlow(FlowSpec):
    """Plain and coroutine foreach tasks that run for ``nap`` seconds side by side."""

    log = Parameter("log", default="")
    fail = Parameter("fail", default="")
    nap = Parameter("nap", default=0.6)

    @step
    def start(self) -> None:
        touch(self, "start")
        self.items = [0, 1, 2]
        self.next(self.plain_split, self.async_split)

    @step
    def plain_split(self) -> None:
        self.next(self.plain_work, foreach="items")

    @step
    def plain_work(self) -> None:
        touch(self, f"plain_work:{self.index}")
        time.sleep(self.nap)
        touch(self, f"plain_done:{self.index}")
        self.p = self.input * 10
        self.next(self.plain_join)

    @step
    def plain_join(self, inputs: Any) -> None:
        self.ps = [inp.p for inp in inputs]
        self.next(self.join)

    @step
    async def async_split(self) -> None:
        self.next(self.async_work, foreach="items")

    @step
    async def async_work(self) -> None:
        touch(self, f"async_work:{self.index}")
        await asyncio.sleep(self.nap)
        touch(self, f"async_done:{self.index}")
        self.a = self.input * 100
        self.next(self.async_join)

    @step
    async def async_join(self, inputs: Any) -> None:
        self.as_ = [inp.a for inp in inputs]
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        touch(self, "join")
        self.ps = inputs.plain_join.ps
        self.as_ = inputs.async_join.as_
        self.next(self.end)

    @step
    def end(self) -> None:
        touch(self, "end")


class SleepyFlow(FlowSpec):
    """For signals: start, then a plain and a coroutine step that sleep ``nap`` seconds."""

    log = Parameter("log", default="")
    fail = Parameter("fail", default="")
    nap = Parameter("nap", default=30.0)

    @step
    def start(self) -> None:
        touch(self, "start")
        self.next(self.plain, self.coro)

    @step
    def plain(self) -> None:
        touch(self, "plain")
        time.sleep(self.nap)
        self.next(self.join)

    @step
    async def coro(self) -> None:
        touch(self, "coro")
        await asyncio.sleep(self.nap)
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        touch(self, "join")
        self.next(self.end)

    @step
    def end(self) -> None:
        touch(self, "end")


class CatchFlow(FlowSpec):
    """A step whose failure is caught, then a step that may fail."""

    log = Parameter("log", default="")
    fail = Parameter("fail", default="")

    @step
    def start(self) -> None:
        touch(self, "start")
        self.next(self.risky)

    @catch(var="problem")
    @step
    def risky(self) -> None:
        touch(self, "risky")
        self.partial = 1
        if self.partial:
            raise ValueError("always")
        self.next(self.after)

    @step
    def after(self) -> None:
        touch(self, "after")
        self.seen = self.problem["type"]
        self.next(self.end)

    @step
    def end(self) -> None:
        touch(self, "end")


class RetryFlow(FlowSpec):
    """A step that succeeds on its second attempt, then a step that may fail."""

    log = Parameter("log", default="")
    fail = Parameter("fail", default="")

    @step
    def start(self) -> None:
        touch(self, "start")
        self.next(self.flaky)

    @retry(times=2, minutes_between_retries=0)
    @step
    def flaky(self) -> None:
        touch(self, "flaky")
        if ran(self.log).count("flaky") == 1:
            raise ConnectionError("first attempt fails")
        self.got = "through"
        self.next(self.after)

    @step
    def after(self) -> None:
        touch(self, "after")
        self.next(self.end)

    @step
    def end(self) -> None:
        touch(self, "end")


def graph_flow(version: int) -> type[FlowSpec]:
    """``GraphFlow`` as it was (1: start -> a -> old -> end) and is (2: start -> a -> new ->
    end, with a parameter added)."""
    if version == 1:

        class GraphFlow(FlowSpec):
            log = Parameter("log", default="")
            fail = Parameter("fail", default="")

            @step
            def start(self) -> None:
                touch(self, "start")
                self.x = 1
                self.next(self.a)

            @step
            def a(self) -> None:
                touch(self, "a")
                self.x += 1
                self.next(self.old)

            @step
            def old(self) -> None:
                touch(self, "old")
                self.next(self.end)

            @step
            def end(self) -> None:
                touch(self, "end")

        return GraphFlow

    class GraphFlow(FlowSpec):  # type: ignore[no-redef]
        log = Parameter("log", default="")
        fail = Parameter("fail", default="")
        extra = Parameter("extra", default=5)

        @step
        def start(self) -> None:
            touch(self, "start")
            self.x = 1
            self.next(self.a)

        @step
        def a(self) -> None:
            touch(self, "a")
            self.x += 1
            self.next(self.new)

        @step
        def new(self) -> None:
            touch(self, "new")
            self.x += self.extra
            self.next(self.end)

        @step
        def end(self) -> None:
            touch(self, "end")

    return GraphFlow


FLOWS: dict[str, type[FlowSpec]] = {
    "LinearFlow": LinearFlow,
    "ForeachFlow": ForeachFlow,
    "SleepyFlow": SleepyFlow,
}

if __name__ == "__main__":
    FLOWS[sys.argv.pop(1)].main()
