"""Flows and values for safe loading (tests/test_trust.py, the U lines of the catalogue).

``Point`` is a value of our own class, so it is stored as a pickle. ``Alarm`` stands for a
crafted pickle: unpickling one creates a file, which a test can look for. ``TrustFlow``
pickles in every place a resume reuses: a parameter, a foreach list, a foreach body's
artifacts (read by a join) and an artifact passed on to the end step.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np

from asyncflow import FlowSpec, Parameter, step
from asyncflow._codecs import encode

__all__ = ["Alarm", "Point", "Resigned", "TrustFlow", "point"]


class Point:
    """A small value of a class of our own: the codecs store it as a pickle."""

    def __init__(self, x: int) -> None:
        self.x = x

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and other.x == self.x

    def __hash__(self) -> int:
        return hash(self.x)

    def __repr__(self) -> str:
        return f"Point({self.x})"


def point(text: str) -> Point:
    """A parameter type whose values are pickled (``--origin 3``)."""
    return Point(int(text))


class Alarm:
    """A crafted pickle, harmless: unpickling it creates the file ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[Path]]:
        return (Path.touch, (Path(self.path),))


class TrustFlow(FlowSpec):
    """start -> body (foreach over two Points) -> join -> end, with pickles throughout.

    While the file ``fail`` exists, the join fails (to leave a run to resume). With
    ``alarm`` set, start also stores an Alarm that nothing in the flow reads.
    """

    origin = Parameter("origin", type=point, default="1")
    fail = Parameter("fail", default="")
    alarm = Parameter("alarm", default="")

    @step
    def start(self) -> None:
        self.items = [Point(1), Point(2)]
        self.numbers = [1, 2, 3]
        self.array = np.arange(3)
        if self.alarm:
            self.evil = Alarm(self.alarm)
        self.next(self.body, foreach="items")

    @step
    def body(self) -> None:
        self.piece = Point(self.input.x * 10)
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        if self.fail and os.path.exists(self.fail):
            raise RuntimeError("planned failure")
        self.pieces = [inp.piece.x for inp in inputs]
        self.next(self.end)

    @step
    def end(self) -> None:
        self.total = self.origin.x + sum(self.pieces)


class Resigned(FlowSpec):
    """middle removes the signature of start's pickle (as someone editing the store under a
    running flow would), so that end, which reads it, is refused."""

    db = Parameter("db", default="")

    @step
    def start(self) -> None:
        self.point = Point(5)
        self.next(self.middle)

    @step
    def middle(self) -> None:
        sha = encode(Point(5)).sha  # not self.point: reading it here would vouch for it
        with contextlib.closing(sqlite3.connect(self.db, timeout=30)) as conn:
            for _ in range(500):  # until start's commit has landed
                if conn.execute("SELECT 1 FROM blobs WHERE sha = ?", (sha,)).fetchone():
                    break
                time.sleep(0.01)
            with conn:
                conn.execute("UPDATE blobs SET mac = NULL WHERE sha = ?", (sha,))
        self.next(self.end)

    @step
    def end(self) -> None:
        self.x = self.point.x
