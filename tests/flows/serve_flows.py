"""Flows for tests/test_serve.py: one that waits for a gate file in the middle of a foreach
(a run going while ``asyncflow serve`` reads the same store), and one that fails."""

from __future__ import annotations

import os
import sys
import time

from asyncflow import FlowSpec, Parameter, step

# The longest a gated task waits for its file (a test that forgets to open the gate).
GATE_SECONDS = 120.0


class GateFlow(FlowSpec):
    """start fans out over three items; the last waits until the file ``gate`` exists."""

    gate = Parameter("gate", default="", help="the file the last item waits for")

    @step
    def start(self) -> None:
        self.items = [1, 2, 3]
        self.next(self.work, foreach="items")

    @step
    def work(self) -> None:
        if self.input == 3 and self.gate:
            deadline = time.monotonic() + GATE_SECONDS
            while not os.path.exists(self.gate) and time.monotonic() < deadline:
                time.sleep(0.05)
        self.doubled = self.input * 2
        self.next(self.join)

    @step
    def join(self, inputs: list[GateFlow]) -> None:
        self.total = sum(i.doubled for i in inputs)
        self.next(self.end)

    @step
    def end(self) -> None:
        print("total", self.total)


class Failing(FlowSpec):
    """start fails."""

    @step
    def start(self) -> None:
        raise ValueError("this run fails on purpose")
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


FLOWS: dict[str, type[FlowSpec]] = {"GateFlow": GateFlow, "Failing": Failing}

if __name__ == "__main__":
    FLOWS[sys.argv.pop(1)].main()
