"""Flows for the run report's model (tests/test_report_model.py, benchmarks/report_10k.py).

``ASYNCFLOW_TEST_GATE``: a file ``SlowFlow.work`` waits for (bounded) before it ends, after
printing and writing ``<gate>.started``: a run caught while it is still going.
"""

from __future__ import annotations

import os
import pathlib
import time
from typing import Any

import numpy as np

from asyncflow import FlowSpec, Parameter, card, catch, current, retry, step
from asyncflow.cards import Artifact, Markdown, Table

HOSTILE = "<script>alert('x')</script></script><!--&amp;\u2028"


def touch(path: str) -> None:
    """What unpickling an :class:`Evil` calls: makes a file appear."""
    pathlib.Path(path).touch()


class Evil:
    """A value whose unpickling writes the file ``path``: loading it runs code."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (touch, (self.path,))


def explode() -> None:
    """What unpickling an :class:`Exploding` calls: it raises."""
    raise RuntimeError("this value cannot be rebuilt")


class Exploding:
    """A value (pickled) that cannot be unpickled."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (explode, ())


class BadRepr:
    """A value (pickled) whose repr raises."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


class RichFlow(FlowSpec):
    """A foreach with cards and a retried task, parameters, and every kind of preview."""

    alpha = Parameter("alpha", default=0.5)
    label = Parameter("label", default="first")

    @step
    def start(self) -> None:
        print("starting", self.label)
        self.matrix = np.arange(12, dtype=np.float64).reshape(3, 4)
        self.big = np.arange(100_000, dtype=np.int32)
        self.text = "x" * 5000
        self.numbers = list(range(10_000))
        self.mapping = {"a": 1, "b": [1, 2, 3]}
        self.odd = BadRepr()
        self.broken = Exploding()
        self.items = [0, 1, 2]
        self.next(self.body, foreach="items")

    @card
    @retry(times=1)
    @step
    def body(self) -> None:
        self.item = self.input
        if self.input == 1 and current.retry_count == 0:
            raise RuntimeError("the first try of item 1 fails")
        current.card.append(Markdown(f"# item {self.input} {HOSTILE}"))
        current.card.append(Table([[self.input, self.input * 2]], headers=["i", "2i"]))
        current.card.append(Artifact(self.item, name="item"))
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.total = sum(i.item for i in inputs)
        self.next(self.end)

    @step
    def end(self) -> None:
        print("the end", file=__import__("sys").stderr)


class FrameFlow(FlowSpec):
    """A pandas DataFrame artifact."""

    @step
    def start(self) -> None:
        import pandas as pd

        self.frame = pd.DataFrame({"a": range(25), "b": [f"r{i}" for i in range(25)]})
        self.wide = pd.DataFrame([list(range(30))] * 3)
        self.series = pd.Series([1.5, 2.5], name="score")
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class FailFlow(FlowSpec):
    """A step that fails, with a long output."""

    @step
    def start(self) -> None:
        self.next(self.boom)

    @step
    def boom(self) -> None:
        for i in range(3000):
            print(f"line {i:05d} of the output")
        if len(self.__class__.__name__) > 0:
            raise ValueError("the boom step failed")
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class ManyFlow(FlowSpec):
    """A foreach of ``n`` tasks, each setting two small artifacts; the tasks of the indices
    in ``fail`` (a comma list) fail once every other task has finished (the run fails)."""

    n = Parameter("n", default=120)
    fail = Parameter("fail", default="")
    folder = Parameter("folder", default=".")

    @step
    def start(self) -> None:
        self.items = list(range(int(self.n)))
        self.next(self.body, foreach="items")

    @step
    def body(self) -> None:
        self.square = self.input * self.input
        self.label = f"item {self.input}"
        failing = {int(i) for i in str(self.fail).split(",") if i}
        folder = str(self.folder)
        if self.input in failing:
            others = int(self.n) - len(failing)
            for _ in range(600):
                if len([f for f in os.listdir(folder) if f.startswith("done-")]) >= others:
                    break
                time.sleep(0.05)
            raise ValueError(f"item {self.input} fails")
        if failing:
            pathlib.Path(folder, f"done-{self.input}").touch()
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.total = sum(i.square for i in inputs)
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class EvilFlow(FlowSpec):
    """A pickled value whose unpickling writes a file, and hostile text everywhere."""

    marker = Parameter("marker", default="")

    @card
    @step
    def start(self) -> None:
        self.evil = Evil(str(self.marker))
        self.hostile = HOSTILE
        current.card.append(Markdown(HOSTILE))
        print(HOSTILE)
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class SlowFlow(FlowSpec):
    """A step that waits for a file: a run caught while it is going."""

    @step
    def start(self) -> None:
        self.items = [0, 1]
        self.next(self.work, foreach="items")

    @step
    def work(self) -> None:
        gate = os.environ["ASYNCFLOW_TEST_GATE"]
        print(f"working on {self.input}", flush=True)
        pathlib.Path(f"{gate}.started{self.input}").touch()
        for _ in range(1200):
            if os.path.exists(gate):
                break
            time.sleep(0.05)
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class CaughtFlow(FlowSpec):
    """A failure caught by @catch: the task is recorded, the run goes on."""

    @catch(var="error")
    @step
    def start(self) -> None:
        if len(self.__class__.__name__) > 0:
            raise KeyError("caught")
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class WideFlow(FlowSpec):
    """A task with more artifacts than a report previews."""

    @step
    def start(self) -> None:
        for i in range(45):
            setattr(self, f"value_{i:02d}", i)
        self.next(self.end)

    @step
    def end(self) -> None:
        pass
