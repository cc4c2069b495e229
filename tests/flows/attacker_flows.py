"""Flows for tests/test_attacker_store.py: a victim's own runs on a store someone prepared.

``Keeper`` stores a pickle (a :class:`Point`), a msgpack list and a chunked (> 1 MiB) pickle
and reads them back in a later step; resumed from ``end``, it reads them from the committed
store. ``BigBody`` hands a chunked numpy array to foreach tasks that change it in place.
``Missing`` pickles a value of a module that it then makes unimportable.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from asyncflow import FlowSpec, Parameter, step
from tests.flows.trust_flows import Point

__all__ = [
    "BIG",
    "AsyncKeeper",
    "BigBody",
    "Bulky",
    "Keeper",
    "Missing",
    "forget_thing",
    "make_thing",
]

BIG = 300_000  # float64 zeros: 2.4 MB, so the array is stored in chunks


class Bulky:
    """A pickled value larger than one chunk (1 MiB)."""

    def __init__(self, n: int) -> None:
        self.blob = bytes(range(256)) * n

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Bulky) and other.blob == self.blob

    def __hash__(self) -> int:
        return hash(self.blob)


class Keeper(FlowSpec):
    """start stores values; end reads them."""

    @step
    def start(self) -> None:
        self.point = Point(7)
        self.numbers = [1, 2, 3]
        self.bulky = Bulky(5000)
        self.next(self.end)

    @step
    def end(self) -> None:
        self.seen = (self.point.x, list(self.numbers), len(self.bulky.blob))


class AsyncKeeper(FlowSpec):
    """Keeper, but the step that reads is a coroutine (its reads are prefetched in a thread)."""

    @step
    def start(self) -> None:
        self.point = Point(7)
        self.next(self.end)

    @step
    async def end(self) -> None:
        self.seen = self.point.x


class BigBody(FlowSpec):
    """Each foreach task sets one element of a shared chunked array in place, then looks."""

    @step
    def start(self) -> None:
        self.big = np.zeros(BIG)
        self.items = [0, 1, 2, 3]
        self.next(self.body, foreach="items")

    @step
    def body(self) -> None:
        self.big[self.input] = 1.0
        time.sleep(0.02)
        self.seen = np.flatnonzero(self.big).tolist()
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.seen_all = [inp.seen for inp in inputs]
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


MODULE = "af_vanished_mod"


def make_thing(folder: str) -> Any:
    """An instance of class ``Thing`` of a module written to ``folder`` and imported."""
    path = Path(folder) / f"{MODULE}.py"
    path.write_text("class Thing:\n    def __init__(self, x):\n        self.x = x\n")
    sys.path.insert(0, folder)
    return __import__(MODULE).Thing(3)


def forget_thing(folder: str) -> None:
    """Make the module of :func:`make_thing` unimportable: file gone, forgotten by Python."""
    (Path(folder) / f"{MODULE}.py").unlink(missing_ok=True)
    if folder in sys.path:
        sys.path.remove(folder)
    sys.modules.pop(MODULE, None)


class Missing(FlowSpec):
    """start stores a value of a module of its own; end makes that module vanish, then reads
    the value."""

    folder = Parameter("folder", default="")

    @step
    def start(self) -> None:
        self.thing = make_thing(self.folder)
        self.next(self.end)

    @step
    def end(self) -> None:
        forget_thing(self.folder)
        self.x = self.thing.x
