"""Flows for the event tests (tests/test_events.py); run as a script by the follow tests:
``python tests/flows/event_flows.py run --store PATH`` runs :class:`SlowFlow`."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from asyncflow import FlowSpec, Parameter, catch, retry, step


class Wide(FlowSpec):
    """start -> work (foreach over range(n), prints one line each) -> join -> end."""

    n = Parameter("n", default=20)
    pause = Parameter("pause", default=0.0)

    @step
    def start(self) -> None:
        self.items = list(range(self.n))
        self.next(self.work, foreach="items")

    @step
    def work(self) -> None:
        if self.pause:
            time.sleep(self.pause)
        print(f"item {self.input}")
        self.out = self.input * 2
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.total = sum(i.out for i in inputs)
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class Split(FlowSpec):
    """start -> (left, right) -> join -> end; right is a coroutine step."""

    @step
    def start(self) -> None:
        self.x = 1
        self.next(self.left, self.right)

    @step
    def left(self) -> None:
        self.l_value = self.x + 1
        print("left says hi", file=sys.stderr)
        self.next(self.join)

    @step
    async def right(self) -> None:
        self.r_value = self.x + 2
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.total = inputs.left.l_value + inputs.right.r_value
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class Retried(FlowSpec):
    """start -> flaky (fails on its first attempt, then succeeds) -> doomed (always fails)."""

    marker = Parameter("marker", default="")

    @step
    def start(self) -> None:
        self.next(self.flaky)

    @retry(times=1)
    @step
    def flaky(self) -> None:
        if not os.path.exists(self.marker):
            open(self.marker, "w").close()
            raise RuntimeError("first attempt fails")
        self.ok = True
        self.next(self.doomed)

    @retry(times=1)
    @step
    def doomed(self) -> None:
        raise ValueError("never works")
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class Caught(FlowSpec):
    """A step whose failure @catch keeps."""

    @step
    def start(self) -> None:
        self.next(self.risky)

    @catch(var="problem")
    @step
    def risky(self) -> None:
        raise KeyError("k")
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class Chatty(FlowSpec):
    """A task printing ``lines`` lines at once (the LogLine bound)."""

    lines = Parameter("lines", default=100_000)

    @step
    def start(self) -> None:
        for i in range(self.lines):
            print(f"line {i}")
        print("no newline at the end", end="")
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class SlowFlow(FlowSpec):
    """start -> tick (foreach of n, each sleeping ``pause`` s) -> join -> end: a run that
    lasts a while, for another process to follow."""

    n = Parameter("n", default=6)
    pause = Parameter("pause", default=0.2)
    hang = Parameter("hang", default=0.0)

    @step
    def start(self) -> None:
        self.items = list(range(self.n))
        self.next(self.tick, foreach="items")

    @step
    def tick(self) -> None:
        time.sleep(self.pause)
        print(f"tick {self.input}")
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        time.sleep(self.hang)
        self.count = len(list(inputs))
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


if __name__ == "__main__":
    SlowFlow.main()
