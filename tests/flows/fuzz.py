"""The flow whose runs make the reference archive of the archive fuzz test.

``FuzzFlow`` stores a value of every codec and kind: msgpack scalars and containers (tuple,
set, frozenset, non-str keys, an int beyond 64 bits, a complex), numpy arrays (C and F order,
a structured dtype, a scalar, and one over 1 MiB, stored in chunks) and pickles: ordinary
ones (a datetime, a Fraction, a :class:`Loud` object) and a :class:`Canary`.

Both classes tell when they are unpickled, by creating a file in the *current directory*:
unpickling a :class:`Canary` runs ``Path("fuzz-canary").touch()`` (no asyncflow or test code
is needed for that: the pickle names only ``pathlib``), unpickling a :class:`Loud` creates
``fuzz-pickle-loaded``. The fuzz workers each run in a folder of their own and look for these
files after every case: neither may ever appear, since no run of an archive is trusted.

The flow fails where the file named by the ``fail`` parameter exists: in ``risky`` (caught by
``@catch``) when it holds "catch", in ``end`` (uncaught) when it holds "end".
"""

from __future__ import annotations

import datetime
import fractions
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from asyncflow import FlowSpec, Parameter, catch, retry, step

CANARY_FILE = "fuzz-canary"
LOUD_FILE = "fuzz-pickle-loaded"


class Canary:
    """Pickles as "create the file ``fuzz-canary`` in the current directory"."""

    def __reduce__(self) -> tuple[Any, tuple[Path]]:
        return (Path.touch, (Path(CANARY_FILE),))


class Loud:
    """An ordinary object of a class of ours, which notes every unpickling of it."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __setstate__(self, state: dict[str, Any]) -> None:
        Path(LOUD_FILE).touch()
        self.__dict__.update(state)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Loud) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)


def _fails(flag: str, where: str) -> bool:
    if not flag or not os.path.exists(flag):
        return False
    with open(flag) as fh:
        return where in fh.read().split()


class FuzzFlow(FlowSpec):
    """start -> body (foreach, one retry) -> join -> risky (@catch) -> end."""

    alpha = Parameter("alpha", default=0.5, help="a float parameter")
    label = Parameter("label", default="fuzz", help="a str parameter")
    fail = Parameter("fail", default="", help="a file naming the steps that must fail")

    @step
    def start(self) -> None:
        print("start: making values of every kind")
        print("a warning on stderr", file=sys.stderr)
        self.nothing = None
        self.flag = True
        self.small = 42
        self.negative = -(2**40)
        self.bigint = 2**100 + 7
        self.minus_big = -(3**70)
        self.ratio = 0.1
        self.z = complex(1.5, -2.25)
        self.text = "héllo, wörld ✓"
        self.raw = b"\x00\x01bytes\xff"
        self.items = [1, 2, 3]
        self.pairs = (1, "two", (3.0, None))
        self.members = {3, 1, 2}
        self.frozen = frozenset({"a", "b"})
        self.mapping = {1: "one", "two": [2, 2.0], (3, 4): {"nested": {5, 6}}, None: b"x"}
        self.ints = np.arange(12, dtype=np.int32).reshape(3, 4)
        self.fortran = np.asfortranarray(np.linspace(0, 1, 20, dtype=np.float32).reshape(4, 5))
        self.records = np.array([(1, 2.5), (3, 4.5)], dtype=[("a", "<i4"), ("b", "<f8")])
        self.scalar = np.float32(3.25)
        self.empty = np.zeros((0, 3), dtype=np.int16)
        # 1.2 MiB: stored in two chunk rows.
        self.big = np.arange(157_286, dtype=np.float64) * self.alpha
        self.when = datetime.datetime(2024, 5, 17, 12, 30, tzinfo=datetime.UTC)
        self.fraction = fractions.Fraction(22, 7)
        self.loud = Loud(7)
        self.canary = Canary()
        self.next(self.body, foreach="items")

    @retry(times=1, minutes_between_retries=0)
    @step
    def body(self) -> None:
        from asyncflow import current

        print(f"body {self.index}: attempt {current.retry_count}")
        if self.index == 1 and current.retry_count == 0:
            raise RuntimeError("a first attempt that fails")
        self.square = self.input**2
        self.vec = np.full(4, self.input, dtype=np.int64)
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.total = sum(inp.square for inp in inputs)
        self.vecs = [inp.vec.tolist() for inp in inputs]
        self.merge_artifacts(inputs, exclude=["square", "vec"])
        self.next(self.risky)

    @catch(var="problem")
    @step
    async def risky(self) -> None:
        if _fails(self.fail, "catch"):
            raise ValueError("risky failed, and @catch caught it")
        self.calm = "nothing went wrong"
        self.next(self.end)

    @step
    def end(self) -> None:
        print("end of the run", self.total)
        if _fails(self.fail, "end"):
            raise RuntimeError("end failed, uncaught")
        self.done = True
