"""Flows for the pathspec client and ``spin`` tests.

``SpinFlow``: start -> foreach train over ``items`` -> join -> end, a parameter and a numpy
artifact. ``BranchFlow``: a static split whose join reads both branches. ``FailFlow``: the
step ``boom`` fails when the parameter ``fail`` is true.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from asyncflow import FlowSpec, Parameter, current, executor, retry, step


class SpinFlow(FlowSpec):
    """start -> train (foreach items) -> join -> end."""

    alpha = Parameter("alpha", default=2)

    @step
    def start(self) -> None:
        self.items = [10, 20, 30]
        self.arr = np.arange(6, dtype=np.float32)
        self.note = "from start"
        self.next(self.train, foreach="items")

    @step
    def train(self) -> None:
        self.score = self.input * self.alpha
        print(f"train {current.task_id} scored {self.score}")
        print("train warns", file=sys.stderr)
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.total = sum(i.score for i in inputs)
        self.merge_artifacts(inputs, include=["note"])
        self.next(self.end)

    @step
    async def end(self) -> None:
        self.done = self.total + 1


class BranchFlow(FlowSpec):
    """start -> (left, right) -> meet -> end."""

    @step
    def start(self) -> None:
        self.x = 1
        self.next(self.left, self.right)

    @step
    def left(self) -> None:
        self.side = "left"
        self.lx = self.x + 1
        self.next(self.meet)

    @step
    def right(self) -> None:
        self.side = "right"
        self.rx = self.x + 2
        self.next(self.meet)

    @step
    def meet(self, inputs: Any) -> None:
        self.sides = [i.side for i in inputs]
        self.both = inputs.left.lx + inputs.right.rx
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class FailFlow(FlowSpec):
    """start -> boom -> end; boom raises while ``fail`` is true."""

    fail = Parameter("fail", default=True)

    @step
    def start(self) -> None:
        self.x = 5
        self.next(self.boom)

    @step
    def boom(self) -> None:
        print("boom is about to fail")
        if self.fail:
            raise ValueError(f"boom with x={self.x}")
        self.y = self.x * 2
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class ShapeFlow(FlowSpec):
    """start -> end; ``spin_shape.ShapeFlow`` is the same flow with a step between."""

    @step
    def start(self) -> None:
        self.x = 1
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class PolicyFlow(FlowSpec):
    """A step with @retry and @executor("process"), noting each attempt in the file ``log``:
    spin runs it once, in this process."""

    fail = Parameter("fail", default=False)
    log = Parameter("log", default="")

    @step
    def start(self) -> None:
        self.next(self.work)

    @retry(times=3)
    @executor("process")
    @step
    def work(self) -> None:
        import os

        self.pid = os.getpid()
        with open(self.log, "a") as fh:
            fh.write("attempt\n")
        if self.fail:
            raise RuntimeError("always")
        self.next(self.end)

    @step
    def end(self) -> None:
        pass
