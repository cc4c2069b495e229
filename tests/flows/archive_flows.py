"""Flows for the run archive tests (tests/test_archive.py): runs to export, import and resume.

``ShareFlow`` stores every kind of record an archive must carry: parameters, a foreach, a
step that fails once and is retried, output on stdout and stderr, and artifacts of every
encoding (msgpack, numpy, pickle). ``Resumable`` fails in ``middle`` while the environment
variable ``ARCHIVE_TEST_FAIL`` is set and stores only msgpack and numpy values, so an
untrusted copy of it can be resumed. ``Big`` stores one large numpy array.

Run as a script, the first argument names the flow: ``python archive_flows.py Resumable resume``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

import anyio
import numpy as np

from asyncflow import FlowSpec, Parameter, current, retry, step

FAIL_VARIABLE = "ARCHIVE_TEST_FAIL"


@dataclass(frozen=True)
class Point:
    """A value of our own class: stored as a pickle."""

    x: int
    y: int


class ShareFlow(FlowSpec):
    """start -> body (foreach) -> join -> flaky (fails once) -> end."""

    alpha = Parameter("alpha", default=0.5)
    label = Parameter("label", default="demo")

    @step
    def start(self) -> None:
        print(f"start {self.label}")
        print("start warns", file=sys.stderr)
        self.items = [1, 2, 3]
        self.matrix = np.arange(12, dtype=np.int64).reshape(3, 4)
        self.point = Point(1, 2)
        self.pair = (self.label, 7)
        self.chunky = np.arange(300_000, dtype=np.float64)  # 2.4 MB: three chunk rows
        self.next(self.body, foreach="items")

    @step
    async def body(self) -> None:
        print(f"body {self.index}")
        self.sq = self.input**2 * self.alpha
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.total = sum(i.sq for i in inputs)
        self.merge_artifacts(inputs, exclude=["sq"])
        self.next(self.flaky)

    @retry(times=2, minutes_between_retries=0)
    @step
    def flaky(self) -> None:
        print(f"attempt {current.retry_count}")
        if current.retry_count == 0:
            raise ConnectionError("the first attempt fails")
        self.through = True
        self.next(self.end)

    @step
    def end(self) -> None:
        self.result = {"total": self.total, "label": self.label, "cells": int(self.matrix.sum())}


class Resumable(FlowSpec):
    """start -> middle (fails while $ARCHIVE_TEST_FAIL is set) -> end; no pickled values."""

    scale = Parameter("scale", default=3)

    @step
    def start(self) -> None:
        print("start ran")
        self.base = np.arange(6, dtype=np.float64) * self.scale
        self.words = ["alpha", "beta"]
        self.next(self.middle)

    @step
    def middle(self) -> None:
        if os.environ.get(FAIL_VARIABLE):
            raise RuntimeError("planned failure in middle")
        self.host_pid = os.getpid()
        self.doubled = (self.base * 2).tolist()
        self.next(self.end)

    @step
    def end(self) -> None:
        self.total = float(self.base.sum()) + len(self.words) + sum(self.doubled)


class Big(FlowSpec):
    """start stores one numpy array of ``mib`` MiB (random bytes, so nothing compresses)."""

    mib = Parameter("mib", default=64)

    @step
    def start(self) -> None:
        rng = np.random.default_rng(7)
        self.array = rng.integers(0, 255, size=self.mib << 20, dtype=np.uint8)
        self.next(self.end)

    @step
    def end(self) -> None:
        self.done = True


def gated_flow(entered: anyio.Event, release: anyio.Event) -> type[FlowSpec]:
    """A flow whose start step sets ``entered`` then waits for ``release``: a live run."""

    class Gated(FlowSpec):
        @step
        async def start(self) -> None:
            entered.set()
            await release.wait()
            self.x = 1
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    return Gated


FLOWS: dict[str, type[FlowSpec]] = {"Resumable": Resumable, "ShareFlow": ShareFlow, "Big": Big}

if __name__ == "__main__":
    FLOWS[sys.argv.pop(1)].main()
