"""A flow for the crash tests: a foreach that commits, then a step that signals and hangs.

Run as a script (``python tests/flows/crash.py run --marker PATH ...``) in a child process:
the ``hang`` step writes ``marker`` and, when ``$CRASHFLOW_HANG`` is set, sleeps until the
test kills the process. Without that variable (a resume in the test's own process) it
passes straight on.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from asyncflow import FlowSpec, Parameter, step

WIDTH = 12


def work_value(i: int) -> np.ndarray:
    return np.arange(i * 1000, dtype=np.float64) * 0.5


class CrashFlow(FlowSpec):
    """start -> work (foreach) -> join -> hang -> end."""

    marker = Parameter("marker", default="")
    width = Parameter("width", default=WIDTH)

    @step
    def start(self) -> None:
        self.items = list(range(self.width))
        self.next(self.work, foreach="items")

    @step
    def work(self) -> None:
        self.value = self.input * 10
        self.arr = work_value(self.input)
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.total = sum(inp.value for inp in inputs)
        self.next(self.hang)

    @step
    def hang(self) -> None:
        if self.marker:
            with open(self.marker, "w") as fh:
                fh.write(str(os.getpid()))
        if os.environ.get("CRASHFLOW_HANG"):
            time.sleep(600)
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


if __name__ == "__main__":
    CrashFlow.main()
