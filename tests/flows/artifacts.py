"""Flows for the artifact rules of CONTRACT.md ("Artifacts" 1-7)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import anyio
import numpy as np

from asyncflow import FlowSpec, IncludeFile, MergeArtifactsError, Parameter, current, step

# --- 1. what is persisted ----------------------------------------------------------------------


class PersistFlow(FlowSpec):
    """Public names are artifacts; ``_private``, ``input`` and ``index`` are not."""

    @step
    def start(self) -> None:
        self.public = "kept"
        self._private = "dropped"
        self.items = ["x", "y"]
        self.next(self.body, foreach="items")

    @step
    async def body(self) -> None:
        self.seen_input = self.input
        self.seen_index = self.index
        self._scratch = [1, 2, 3]
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.inputs_seen = [inp.seen_input for inp in inputs]
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class FailAfterSetFlow(FlowSpec):
    """A step sets an artifact, then fails: nothing of that task is persisted."""

    @step
    def start(self) -> None:
        self.before = 1
        self.next(self.boom)

    @step
    def boom(self) -> None:
        self.half_done = "never stored"
        raise RuntimeError("failing after setting half_done")
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


# --- 2. visibility and passing by reference ----------------------------------------------------


class VisibilityFlow(FlowSpec):
    """start's artifacts are seen by both branches and by every task of a foreach."""

    @step
    def start(self) -> None:
        self.base = "from start"
        self.items = [1, 2, 3]
        self.next(self.fan, self.other)

    @step
    async def fan(self) -> None:
        self.fan_saw = self.base
        self.next(self.each, foreach="items")

    @step
    def each(self) -> None:
        self.each_saw = (self.base, self.fan_saw, self.input)
        self.next(self.fan_join)

    @step
    def fan_join(self, inputs: Any) -> None:
        self.each_saws = [inp.each_saw for inp in inputs]
        self.next(self.join)

    @step
    def other(self) -> None:
        self.other_saw = self.base
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.each_saws = inputs.fan_join.each_saws
        self.other_saw = inputs.other.other_saw
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class Tracked:
    """A value that counts how often it is pickled and unpickled (class-wide counters)."""

    dumps = 0
    loads = 0

    def __init__(self, value: int) -> None:
        self.value = value

    def __getstate__(self) -> dict[str, Any]:
        Tracked.dumps += 1
        return {"value": self.value}

    def __setstate__(self, state: dict[str, Any]) -> None:
        Tracked.loads += 1
        self.value = state["value"]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tracked) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)


class ByReferenceFlow(FlowSpec):
    """start sets values no later step touches, except middle, which only reads ``numbers``."""

    @step
    def start(self) -> None:
        self.numbers = list(range(1000))
        self.text = "some text"
        self.obj = Tracked(7)
        self.next(self.middle)

    @step
    async def middle(self) -> None:
        self.count = len(self.numbers)
        self.next(self.last)

    @step
    def last(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class TrackedCountsFlow(FlowSpec):
    """Records the pickling counters of Tracked in later steps that never touch ``obj``."""

    @step
    def start(self) -> None:
        self.obj = Tracked(3)
        self.next(self.middle)

    @step
    def middle(self) -> None:
        self.dumps_in_middle = Tracked.dumps
        self.loads_in_middle = Tracked.loads
        self.next(self.end)

    @step
    async def end(self) -> None:
        self.dumps_in_end = Tracked.dumps
        self.loads_in_end = Tracked.loads


# --- 3. joins and merge_artifacts --------------------------------------------------------------

MERGE_NAMES = ("pre", "same", "only_a", "only_b", "diff", "diff2")


class MergeFlow(FlowSpec):
    """Branches a and b set equal, one-sided and conflicting values; ``mode`` picks the merge."""

    mode = Parameter("mode", default="resolved")

    @step
    def start(self) -> None:
        self.pre = "set before the split"
        self.next(self.a, self.b)

    @step
    def a(self) -> None:
        self.same = [1, 2]
        self.only_a = "A"
        self.diff = 1
        self.diff2 = "x"
        if self.mode == "outside":
            self.merge_artifacts([])
        self.next(self.join)

    @step
    async def b(self) -> None:
        self.same = [1, 2]
        self.only_b = "B"
        self.diff = 2
        self.diff2 = "y"
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.pre_before_merge = hasattr(self, "pre")
        self.mode_in_join = self.mode
        self.via_name = [inputs.a.diff, inputs.b.diff]
        self.via_index = [inputs[0].diff, inputs[1].diff]
        self.via_iteration = [inp.diff for inp in inputs]
        self.input_count = len(inputs)
        self.error_names: list[str] = []
        self.error_text = ""
        try:
            self._merge(inputs)
        except MergeArtifactsError as exc:
            if self.mode == "raise":
                raise
            self.error_names = list(exc.names)
            self.error_text = str(exc)
        self.visible = [n for n in MERGE_NAMES if hasattr(self, n)]
        self.next(self.end)

    def _merge(self, inputs: Any) -> None:
        mode = self.mode
        if mode == "resolved":
            self.diff = max(inp.diff for inp in inputs)
            self.diff2 = "mine"
            self.merge_artifacts(inputs)
        elif mode == "preset":
            self.same = "mine"
            self.merge_artifacts(inputs, exclude=["diff", "diff2"])
        elif mode in ("conflict", "raise"):
            self.merge_artifacts(inputs)
        elif mode == "include":
            self.merge_artifacts(inputs, include=["same", "only_a"])
        elif mode == "exclude":
            self.merge_artifacts(inputs, exclude=["diff", "diff2"])
        elif mode == "include_missing":
            self.merge_artifacts(inputs, include=["same", "nope"])
        elif mode == "include_and_exclude":
            self.merge_artifacts(inputs, include=["same"], exclude=["diff"])

    @step
    def end(self) -> None:
        pass


class MergeForeachFlow(FlowSpec):
    """merge_artifacts after a foreach: shared values merge, per-task ones are excluded."""

    @step
    def start(self) -> None:
        self.shared = {"k": 1}
        self.items = [1, 2, 3]
        self.next(self.body, foreach="items")

    @step
    def body(self) -> None:
        self.sq = self.input * self.input
        self.const = "c"
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.total = sum(inp.sq for inp in inputs)
        self.sqs = [inputs[i].sq for i in range(len(inputs))]
        self.merge_artifacts(inputs, exclude=["sq"])
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


# --- 4. type round trip ------------------------------------------------------------------------


class Point:
    """A user class (stored with pickle)."""

    def __init__(self, x: int, y: int) -> None:
        self.x = x
        self.y = y

    def __eq__(self, other: object) -> bool:
        return type(other) is Point and (other.x, other.y) == (self.x, self.y)

    def __hash__(self) -> int:
        return hash((self.x, self.y))


def sample_values() -> dict[str, Any]:
    """Fresh values of many types, by artifact name."""
    return {
        "a_tuple": (1, "two", (3.0, None)),
        "empty_tuple": (),
        "a_set": {1, 2, 3},
        "a_frozenset": frozenset({"x", "y"}),
        "int_keys": {1: "one", 2: "two", -3: [3]},
        "tuple_keys": {(1, 2): "pair", (3,): "single"},
        "mixed_keys": {1: "int", "1": "str"},
        "raw_bytes": b"\x00\xffbytes",
        "a_bytearray": bytearray(b"ab\x00"),
        "big_int": 2**100 + 1,
        "negative_big_int": -(2**70),
        "bools_and_ints": [True, 1, 0, False],
        "floats": [1.0, -0.0, float("inf"), 1e-300],
        "a_complex": 1 + 2j,
        "unicode": "héllo ✓ \U0001f600",
        "nothing": None,
        "nested": [(1, 2), {"k": {3, 4}}, [frozenset({5})]],
        "float32_2x3": np.arange(6, dtype=np.float32).reshape(2, 3),
        "int16_fortran": np.asfortranarray(np.arange(12, dtype=np.int16).reshape(3, 4)),
        "bool_array": np.array([True, False, True]),
        "uint8_3d": np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
        "empty_array": np.zeros((0, 5), dtype=np.complex128),
        "numpy_scalar": np.float64(1.5),
        "numpy_int": np.int32(-7),
        "a_point": Point(1, 2),
        "points_by_name": {"p": Point(3, 4)},
    }


def difference(expected: Any, actual: Any, where: str = "value") -> str | None:
    """Why ``actual`` is not equal to, and of the same type as, ``expected`` (None if it is)."""
    if type(actual) is not type(expected):
        return f"{where}: {type(actual).__name__} instead of {type(expected).__name__}"
    if isinstance(expected, np.ndarray):
        if actual.dtype != expected.dtype or actual.shape != expected.shape:
            got, want = f"{actual.dtype}{actual.shape}", f"{expected.dtype}{expected.shape}"
            return f"{where}: {got} instead of {want}"
        if not np.array_equal(actual, expected):
            return f"{where}: different array values"
        return None
    if isinstance(expected, list | tuple):
        if len(actual) != len(expected):
            return f"{where}: length {len(actual)} instead of {len(expected)}"
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            if problem := difference(e, a, f"{where}[{i}]"):
                return problem
        return None
    if isinstance(expected, dict):
        if len(actual) != len(expected):
            return f"{where}: {len(actual)} keys instead of {len(expected)}"
        for key, value in expected.items():
            same_key = [k for k in actual if type(k) is type(key) and k == key]
            if not same_key:
                return f"{where}: no key {key!r} of type {type(key).__name__}"
            if problem := difference(value, actual[same_key[0]], f"{where}[{key!r}]"):
                return problem
        return None
    if isinstance(expected, set | frozenset):
        if actual != expected or sorted(map(repr, actual)) != sorted(map(repr, expected)):
            return f"{where}: {actual!r} != {expected!r}"
        return None
    if isinstance(expected, float) and str(expected) != str(actual):  # -0.0 vs 0.0
        return f"{where}: {actual!r} != {expected!r}"
    if actual != expected:
        return f"{where}: {actual!r} != {expected!r}"
    return None


class RoundTripFlow(FlowSpec):
    """start stores every sample value; a plain and a coroutine step load and compare them."""

    @step
    def start(self) -> None:
        for name, value in sample_values().items():
            setattr(self, name, value)
        self.next(self.check_plain)

    @step
    def check_plain(self) -> None:
        expected = sample_values()
        found = {name: difference(v, getattr(self, name), name) for name, v in expected.items()}
        self.plain_problems = {name: p for name, p in found.items() if p is not None}
        self.next(self.check_async)

    @step
    async def check_async(self) -> None:
        expected = sample_values()
        found = {name: difference(v, getattr(self, name), name) for name, v in expected.items()}
        self.async_problems = {name: p for name, p in found.items() if p is not None}
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


# --- 5. in-place mutation ----------------------------------------------------------------------


class MutateFlow(FlowSpec):
    """Foreach tasks 0 and 1 mutate start's values in place (no reassignment); task 2 doesn't.

    All tasks load before any mutates and snapshot after all have mutated (coroutine steps
    sleeping in between), so shared objects would show every task's change.
    """

    @step
    def start(self) -> None:
        self.lst = [1, 2, 3]
        self.cfg = {"k": [1]}
        self.arr = np.zeros(3)
        self.items = [0, 1, 2]
        self.next(self.body, foreach="items")

    @step
    async def body(self) -> None:
        lst, cfg, arr = self.lst, self.cfg, self.arr
        await anyio.sleep(0.05)
        if self.input != 2:
            lst.append(10 + self.index)
            cfg["k"].append(self.index)
            arr[self.index] = 1.0
        await anyio.sleep(0.1)
        self.seen_lst = list(self.lst)
        self.seen_cfg = {"k": list(self.cfg["k"])}
        self.seen_arr = self.arr.tolist()
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.lsts = [inp.lst for inp in inputs]
        self.next(self.after)

    @step
    def after(self) -> None:
        self.lst_after = self.lsts[0]
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class MutateThreadsFlow(FlowSpec):
    """Plain foreach tasks append to start's list in place, concurrently, in threads."""

    @step
    def start(self) -> None:
        self.lst = ["start"]
        self.items = [0, 1, 2, 3]
        self.next(self.body, foreach="items")

    @step
    def body(self) -> None:
        self.lst.append(f"task {self.index}")
        self.seen_lst = list(self.lst)
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.lsts = [inp.lst for inp in inputs]
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


BIG_ZEROS = 200_000  # 1.6 MB of float64: stored in chunks, loaded through owned buffers


class BigMutateFlow(FlowSpec):
    """Concurrent tasks mutate a large loaded array in place, on the loop and in threads."""

    @step
    def start(self) -> None:
        self.big = np.zeros(BIG_ZEROS)
        self.items = [0, 1, 2, 3]
        self.next(self.abody, foreach="items")

    @step
    async def abody(self) -> None:
        self.big[self.index] = 1.0 + self.index
        await anyio.sleep(0.05)
        self.seen = np.flatnonzero(self.big).tolist()
        self.next(self.pbody)

    @step
    def pbody(self) -> None:
        self.big[10 + self.index] = 2.0
        time.sleep(0.02)
        self.seen = np.flatnonzero(self.big).tolist()
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.seen_join = [np.flatnonzero(inp.big).tolist() for inp in inputs]
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class InputMutationFlow(FlowSpec):
    """Each foreach element (a list) splits into left, which appends to ``self.input`` in place,
    and right, which looks at its own ``self.input`` after left has appended; a later step of
    the same foreach element, and a nested foreach's ``foreach_stack()``, look again."""

    @step
    def start(self) -> None:
        self.items = [[1], [2]]
        self.next(self.body, foreach="items")

    @step
    def body(self) -> None:
        self.next(self.left, self.right)

    @step
    async def left(self) -> None:
        self.input.append("left")
        self.left_saw = list(self.input)  # its own change, within the task
        await anyio.sleep(0.1)
        self.next(self.body_join)

    @step
    async def right(self) -> None:
        await anyio.sleep(0.05)
        self.right_saw = list(self.input)
        self.next(self.body_join)

    @step
    def body_join(self, inputs: Any) -> None:
        self.next(self.later)

    @step
    def later(self) -> None:
        self.later_saw = list(self.input)
        self.pairs = [["a"], ["b"]]
        self.next(self.inner, foreach="pairs")

    @step
    def inner(self) -> None:
        outer = self.foreach_stack()[0][2]
        outer.append(f"inner {self.index}")
        self.input.append("mutated")
        self.inner_saw = (list(self.foreach_stack()[0][2]), list(self.input))
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs: Any) -> None:
        self.inner_saws = [inp.inner_saw for inp in inputs]
        self.outer_after_inner = list(self.input)
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


# --- 6. values that cannot be stored -----------------------------------------------------------


class UnstorableFlow(FlowSpec):
    """``what`` picks the bad assignment: self (in a), a lock (in b) or inputs (in join)."""

    what = Parameter("what", default="self")

    @step
    def start(self) -> None:
        self.next(self.a, self.b)

    @step
    def a(self) -> None:
        if self.what == "self":
            self.me = self
        self.next(self.join)

    @step
    async def b(self) -> None:
        if self.what == "lock":
            self.guard = threading.Lock()
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        if self.what == "inputs":
            self.kept = inputs
        if self.what == "one_input":
            self.first = inputs[0]
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


# --- 7. parameters and IncludeFiles ------------------------------------------------------------


class ParamsEverywhereFlow(FlowSpec):
    """Every step records the parameter and the included file it sees."""

    alpha = Parameter("alpha", default=0.5)
    notes = IncludeFile("notes", is_text=True)

    @step
    async def start(self) -> None:
        self.seen_start = (self.alpha, self.notes)
        self.items = [1, 2]
        self.next(self.body, foreach="items")

    @step
    def body(self) -> None:
        self.seen_body = (self.alpha, self.notes)
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.seen_join = (self.alpha, self.notes)
        self.next(self.end)

    @step
    async def end(self) -> None:
        self.seen_end = (self.alpha, self.notes)


class ReadOnlyParamsFlow(FlowSpec):
    """The step named ``where`` assigns the parameter ``attr`` (which must fail)."""

    alpha = Parameter("alpha", default=0.5)
    notes = IncludeFile("notes", is_text=True)
    where = Parameter("where", default="start")
    attr = Parameter("attr", default="alpha")

    def _assign_here(self) -> None:
        if self.where == current.step_name:
            if self.attr == "alpha":
                self.alpha = 99.0
            else:
                self.notes = "overwritten"

    @step
    def start(self) -> None:
        self._assign_here()
        self.next(self.a, self.b)

    @step
    async def a(self) -> None:
        self._assign_here()
        self.next(self.join)

    @step
    def b(self) -> None:
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self._assign_here()
        self.next(self.end)

    @step
    async def end(self) -> None:
        self._assign_here()


def write_notes(folder: Path, text: str = "some notes\nline 2\n") -> str:
    path = folder / "notes.txt"
    path.write_text(text, encoding="utf-8")
    return str(path)
