"""Flows for the error catalogue: stores to read back, break, fill up or lock away, and
steps that fail in each way docs/errors.md lists (S02-S22)."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

import numpy as np

import asyncflow
from asyncflow import FlowSpec, IncludeFile, JSONType, Parameter, step, timeout

# Three 1 MiB chunk rows: a blob whose pages are spread over the file.
CHUNKY_BYTES = 3 * (1 << 20) + 123


class Pair(FlowSpec):
    """Two steps, one small artifact each."""

    @step
    def start(self) -> None:
        self.x = 1
        self.next(self.end)

    @step
    def end(self) -> None:
        self.total = self.x + 1


class Chunky(FlowSpec):
    """start stores a value stored in chunk rows (a few MiB)."""

    @step
    def start(self) -> None:
        self.blob = bytes(range(256)) * (CHUNKY_BYTES // 256) + b"x" * (CHUNKY_BYTES % 256)
        self.next(self.end)

    @step
    def end(self) -> None:
        self.size = len(self.blob)


class Boom(FlowSpec):
    """start fails, so middle and end never run."""

    @step
    def start(self) -> None:
        raise RuntimeError("planned failure")
        self.next(self.middle)

    @step
    def middle(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class Grows(FlowSpec):
    """start is small; middle stores 4 MB, more than a tight store can take; end reads it."""

    @step
    def start(self) -> None:
        self.label = "grows"
        self.next(self.middle)

    @step
    def middle(self) -> None:
        self.big = np.arange(500_000, dtype=np.float64)
        self.next(self.end)

    @step
    def end(self) -> None:
        self.total = float(self.big.sum())


# --- steps that fail (S lines of docs/errors.md) ----------------------------------------


class Locked(FlowSpec):
    """S02."""

    @step
    def start(self) -> None:
        self.lock = threading.Lock()
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class Mirror(FlowSpec):
    """S03."""

    @step
    def start(self) -> None:
        self.me = self
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class Unset(FlowSpec):
    """S04."""

    @step
    def start(self) -> None:
        self.x = 1
        self.next(self.end)

    @step
    def end(self) -> None:
        print(self.weights)


class Uneven(FlowSpec):
    """S05."""

    @step
    def start(self) -> None:
        self.next(self.a, self.b)

    @step
    def a(self) -> None:
        self.score = 1
        self.next(self.join)

    @step
    def b(self) -> None:
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.total = inputs.a.score + inputs.b.score
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class WrongBranch(FlowSpec):
    """S06."""

    @step
    def start(self) -> None:
        self.next(self.a, self.b)

    @step
    def a(self) -> None:
        self.next(self.join)

    @step
    def b(self) -> None:
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.x = inputs.c
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class Shadow(FlowSpec):
    """S07."""

    @step
    def start(self) -> None:
        self.train = 1  # type: ignore[assignment,method-assign]
        self.next(self.train)

    @step
    def train(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class Tweaks(FlowSpec):
    """S08."""

    alpha = Parameter("alpha", default=0.5)

    @step
    def start(self) -> None:
        self.alpha = 2.0
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class Again(FlowSpec):
    """S09."""

    @step
    def start(self) -> None:
        self._go()
        self.next(self.end)

    def _go(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class Returns(FlowSpec):
    """S10."""

    @step
    def start(self) -> None:
        if len(self.name) > 0:
            return
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class Jumps(FlowSpec):
    """S11."""

    @step
    def start(self) -> None:
        if len(self.name) > 0:
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


class EndAgain(FlowSpec):
    """S12."""

    @step
    def start(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        self._again()

    def _again(self) -> None:
        self.next(self.start)


class NotAStep(FlowSpec):
    """S13."""

    @step
    def start(self) -> None:
        if len(self.name) > 0:
            self._go()
            return
        self.next(self.end)

    def _go(self) -> None:
        self.next(self._go)

    @step
    def end(self) -> None:
        pass


class NumberedForeach(FlowSpec):
    """S14."""

    @step
    def start(self) -> None:
        if len(self.name) > 0:
            self._go()
            return
        self.next(self.end)

    def _go(self) -> None:
        self.next(self.end, foreach=3)  # type: ignore[arg-type]

    @step
    def end(self) -> None:
        pass


class Slow(FlowSpec):
    """S18."""

    @timeout(seconds=0.05)
    @step
    async def start(self) -> None:
        await asyncio.sleep(5)
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class NoJoin(FlowSpec):
    """S19."""

    @step
    def start(self) -> None:
        self.merge_artifacts([])
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


# --- parameters given to a run, and failures the S lines share --------------------


class Params(FlowSpec):
    """One parameter of each kind."""

    alpha = Parameter("alpha", default=0.5)
    epochs = Parameter("epochs", default=10)
    verbose = Parameter("verbose", default=False)
    config = Parameter("config", type=JSONType, default='{"k": 1}')
    when = Parameter("when", type=int.from_bytes, default=None)
    data = IncludeFile("data", default=None)

    @step
    def start(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class Needs(FlowSpec):
    """Parameters for the R lines of docs/errors.md."""

    runs = Parameter("runs", type=int, required=True)

    @step
    def start(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class BadDefault(FlowSpec):
    """Parameters for the R lines of docs/errors.md."""

    width = Parameter("width", type=int, default="wide")

    @step
    def start(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class Anything(FlowSpec):
    """Parameters for the R lines of docs/errors.md."""

    thing = Parameter("thing", type=lambda text: text)

    @step
    def start(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class Fanout(FlowSpec):
    """start fans out over ``things``, which is missing, not iterable or empty."""

    kind = Parameter("kind", default="missing")

    @step
    def start(self) -> None:
        if self.kind == "int":
            self.things = 5
        elif self.kind == "empty":
            self.things = []
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


class Merges(FlowSpec):
    """Two branches set ``score`` differently; ``how`` says how the join merges."""

    how = Parameter("how", default="plain")

    @step
    def start(self) -> None:
        self.next(self.a, self.b)

    @step
    def a(self) -> None:
        self.score = 1
        self.next(self.join)

    @step
    def b(self) -> None:
        self.score = 2
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        if self.how == "both":
            self.merge_artifacts(inputs, include=["score"], exclude=["score"])
        elif self.how == "absent":
            self.merge_artifacts(inputs, include=["weights"])
        else:
            self.merge_artifacts(inputs)
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class DiesInWorker(FlowSpec):
    """Its start step ends its worker process."""

    @asyncflow.executor("process")
    @step
    def start(self):
        os._exit(1)
        self.next(self.end)

    @step
    def end(self):
        pass


# The source of a module made at run time (no file): the process pool cannot import it.
MADE_AT_RUN_TIME = """
import asyncflow
from asyncflow import FlowSpec, step


class Unimportable(FlowSpec):
    @asyncflow.executor("process")
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
"""
