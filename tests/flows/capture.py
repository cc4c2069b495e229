"""Flows whose concurrent tasks print, for the output-capture tests."""

from __future__ import annotations

import sys
import time
from typing import Any

import anyio

from asyncflow import FlowSpec, step

LINES = 3
# Long enough that the four tasks of a step overlap even when a loaded machine starts them
# tens of milliseconds apart (the tests' premise: they print at the same time).
PAUSE = 0.04


def out_line(step: str, index: int, k: int) -> str:
    return f"{step} task {index} line {k}"


def err_line(step: str, index: int, k: int) -> str:
    return f"{step} task {index} warning {k}"


class PrintFlow(FlowSpec):
    """Four coroutine tasks, then four plain tasks, print lines interleaved with each other."""

    @step
    def start(self) -> None:
        print("start says hi")
        self.items = [0, 1, 2, 3]
        self.next(self.abody, foreach="items")

    @step
    async def abody(self) -> None:
        for k in range(LINES):
            print(out_line("abody", self.index, k))
            print(err_line("abody", self.index, k), file=sys.stderr)
            await anyio.sleep(PAUSE)
        print("partial ", end="")  # a line written in two pieces
        await anyio.sleep(0.01)
        print(f"line of {self.index}")
        self.next(self.pbody)

    @step
    def pbody(self) -> None:
        for k in range(LINES):
            print(out_line("pbody", self.index, k))
            sys.stderr.write(err_line("pbody", self.index, k) + "\n")
            time.sleep(PAUSE)
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.next(self.end)

    @step
    async def end(self) -> None:
        pass
