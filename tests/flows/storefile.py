"""Flows for the store-file tests: many kinds of artifacts, shared values, a large array."""

from __future__ import annotations

from typing import Any

import numpy as np

from asyncflow import FlowSpec, Parameter, step

# 5,250,888 bytes: five full 1 MiB chunks and a partial sixth
BIG_LEN = 656_361
SHARED_PAYLOAD = [f"item {i}" for i in range(2000)]


def big_array() -> np.ndarray:
    return np.arange(BIG_LEN, dtype=np.float64) * 0.5


class RichFlow(FlowSpec):
    """Artifacts of every encoding, a chunked array, a foreach, printed output."""

    seed = Parameter("seed", default=7)

    @step
    def start(self) -> None:
        print("rich start")
        self.numbers = list(range(self.seed))
        self.mapping = {1: (2, 3), "k": {4, 5}}
        self.big = big_array()
        self.small = np.ones((3, 3), dtype=np.int8)
        self.blob = bytes(range(256)) * 10
        self.obj = complex(1, 2)
        self.items = ["a", "b"]
        self.next(self.body, foreach="items")

    @step
    async def body(self) -> None:
        print(f"body {self.input}")
        self.tag = self.input * 3
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.tags = [inp.tag for inp in inputs]
        self.big_sum = float(inputs[0].big.sum())
        self.next(self.end)

    @step
    def end(self) -> None:
        self.done = True


class SharedA(FlowSpec):
    """Sets the shared payload and a value of its own."""

    @step
    def start(self) -> None:
        self.payload = list(SHARED_PAYLOAD)
        self.own = "A"
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class SharedB(FlowSpec):
    """Sets the same payload (built differently) and a value of its own."""

    @step
    async def start(self) -> None:
        self.own = "B"
        self.next(self.middle)

    @step
    def middle(self) -> None:
        self.payload = [f"item {i}" for i in range(2000)]
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class BigFlow(FlowSpec):
    """start stores a 5 MB array; middle reads it back inside the run."""

    @step
    def start(self) -> None:
        self.big = big_array()
        self.next(self.middle)

    @step
    async def middle(self) -> None:
        self.total = float(self.big.sum())
        self.shape = self.big.shape
        self.dtype = str(self.big.dtype)
        self.last = float(self.big[-1])
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class FailingFlow(FlowSpec):
    """Fails in its second step."""

    @step
    def start(self) -> None:
        self.value = 1
        self.next(self.fail)

    @step
    def fail(self) -> None:
        raise RuntimeError("planned failure")
        self.next(self.end)

    @step
    def end(self) -> None:
        pass
