"""Flows with switches and loops (tests/test_switch.py, tests/test_loops.py).

``ASYNCFLOW_TEST_FAIL_PASS``: the pass (0-based) of ``LoopFlow.refine`` that raises, when set;
``ASYNCFLOW_TEST_CRASH_PASS``: the pass that kills its own process (SIGKILL).
``ASYNCFLOW_TEST_RAN``: a file each task appends ``step pass`` to, when set (which tasks ran
their code, and which were cloned by a resume).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import time

from asyncflow import FlowSpec, Parameter, current, step


def ran(step_name: str) -> None:
    log = os.environ.get("ASYNCFLOW_TEST_RAN")
    if log:
        with open(log, "a") as fh:
            fh.write(f"{step_name} {current.pass_index}\n")


def _wait_for_rows(count: int) -> None:
    # The writer commits in batches: wait (bounded) until the store holds the finished tasks
    # of start and of the passes before this one, so a crash now leaves them behind.
    store, run_id = os.environ["ASYNCFLOW_TEST_STORE"], int(current.run_id or 0)
    for _ in range(600):
        with contextlib.closing(sqlite3.connect(store)) as conn:
            done = conn.execute(
                "SELECT count(*) FROM tasks WHERE run_id = ? AND status = 'succeeded'", (run_id,)
            ).fetchone()[0]
        if done >= count + 1:
            return
        time.sleep(0.05)
    raise AssertionError("the store never got the finished tasks")


class SizeFlow(FlowSpec):
    """A switch on an artifact set from a parameter; the branches meet at end."""

    size = Parameter("size", default="big")

    @step
    def start(self):
        self.choice = self.size
        self.next({"big": self.train_big, "small": self.train_small}, condition="choice")

    @step
    def train_big(self):
        ran("train_big")
        self.model = "big model"
        self.next(self.end)

    @step
    def train_small(self):
        ran("train_small")
        self.model = "small model"
        self.next(self.end)

    @step
    def end(self):
        self.final = self.model


class MeetFlow(FlowSpec):
    """A switch whose branches meet again in a plain step (no join); the value is an int."""

    level = Parameter("level", default=1)

    @step
    def start(self):
        self.next({"1": self.low, "2": self.high, "3": self.high}, condition="level")

    @step
    def low(self):
        self.tier = "low"
        self.next(self.after)

    @step
    def high(self):
        self.tier = "high"
        self.next(self.after)

    @step
    def after(self):
        self.seen = f"after {self.tier}"
        self.next(self.end)

    @step
    def end(self):
        pass


class NoConditionFlow(FlowSpec):
    """The switch's condition artifact is never set."""

    @step
    def start(self):
        self.next({"a": self.a, "b": self.end}, condition="route")

    @step
    def a(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class ForeachSwitchFlow(FlowSpec):
    """A switch inside a foreach: each element takes its own case."""

    @step
    def start(self):
        self.items = [1, 2, 3, 4, 5]
        self.next(self.classify, foreach="items")

    @step
    def classify(self):
        self.parity = "even" if self.input % 2 == 0 else "odd"
        self.next({"even": self.even, "odd": self.odd}, condition="parity")

    @step
    def even(self):
        self.label = f"{self.input} is even"
        self.next(self.gather)

    @step
    def odd(self):
        self.label = f"{self.input} is odd"
        self.next(self.gather)

    @step
    def gather(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.labels = [i.label for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


class SplitSwitchFlow(FlowSpec):
    """A switch in one branch of a static split; the branch meets again before the join."""

    @step
    def start(self):
        self.mode = "fast"
        self.next(self.left, self.right)

    @step
    def left(self):
        self.next({"fast": self.quick, "slow": self.careful}, condition="mode")

    @step
    def quick(self):
        self.how = "quick"
        self.next(self.left_done)

    @step
    def careful(self):
        self.how = "careful"
        self.next(self.left_done)

    @step
    def left_done(self):
        self.next(self.join)

    @step
    def right(self):
        self.how = "right"
        self.next(self.join)

    @step
    def join(self, inputs):
        self.hows = [i.how for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


class LoopFlow(FlowSpec):
    """``refine`` loops to itself until it has run ``passes`` times."""

    passes = Parameter("passes", default=3)

    @step
    def start(self):
        ran("start")
        self.count = 0
        self.history = []
        self.next(self.refine)

    @step
    def refine(self):
        ran("refine")
        if str(current.pass_index) == os.environ.get("ASYNCFLOW_TEST_FAIL_PASS"):
            raise RuntimeError(f"refine fails in pass {current.pass_index}")
        if str(current.pass_index) == os.environ.get("ASYNCFLOW_TEST_CRASH_PASS"):
            _wait_for_rows(current.pass_index)  # the passes before this one are in the store
            os.kill(os.getpid(), signal.SIGKILL)  # the process dies mid-run, as in a crash
        self.count += 1
        self.history = [*self.history, (current.pass_index, self.count)]
        print(f"pass {current.pass_index} count {self.count}")
        self.state = "again" if self.count < self.passes else "done"
        self.next({"again": self.refine, "done": self.end}, condition="state")

    @step
    def end(self):
        ran("end")
        self.total = self.count


class TwoStepLoopFlow(FlowSpec):
    """A loop of two steps: ``grow`` then ``check``, which leads back to ``grow``."""

    @step
    def start(self):
        self.size = 1
        self.next(self.grow)

    @step
    def grow(self):
        self.size *= 2
        self.next(self.check)

    @step
    def check(self):
        self.big = self.size >= 8
        self.next({"False": self.grow, "True": self.end}, condition="big")

    @step
    def end(self):
        pass


class ForeachLoopFlow(FlowSpec):
    """A loop inside a foreach: each element loops its own number of passes."""

    @step
    def start(self):
        self.targets = [2, 3, 1]
        self.next(self.count_up, foreach="targets")

    @step
    def count_up(self):
        self.n = getattr(self, "n", 0) + 1
        self.passes_seen = [*getattr(self, "passes_seen", []), current.pass_index]
        self.more = "yes" if self.n < self.input else "no"
        self.next({"yes": self.count_up, "no": self.done}, condition="more")

    @step
    def done(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.counts = [i.n for i in inputs]
        self.seen = [i.passes_seen for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


class ForeachInLoopFlow(FlowSpec):
    """A loop around a foreach: its join is the switch that goes round again."""

    @step
    def start(self):
        self.round = 0
        self.next(self.fork)

    @step
    def fork(self):
        self.round += 1
        self.items = [1, 2]
        self.next(self.body, foreach="items")

    @step
    def body(self):
        self.v = self.input * self.round
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.v for i in inputs)
        self.merge_artifacts(inputs, include=["round"])
        self.more = self.round < 3
        self.next({"True": self.fork, "False": self.end}, condition="more")

    @step
    def end(self):
        pass


class _BadStr:
    def __str__(self) -> str:
        raise RuntimeError("boom in __str__")


class BadStrConditionFlow(FlowSpec):
    """A switch whose condition's ``str()`` raises."""

    @step
    def start(self):
        self.choice = _BadStr()
        self.next({"a": self.end, "b": self.end}, condition="choice")

    @step
    def end(self):
        pass


class EndlessFlow(FlowSpec):
    """A loop whose condition never ends it: only max_passes stops it."""

    @step
    def start(self):
        self.next(self.spin_round)

    @step
    def spin_round(self):
        self.again = True
        self.next({"True": self.spin_round, "False": self.end}, condition="again")

    @step
    def end(self):
        pass


if __name__ == "__main__":
    import sys

    {cls.__name__: cls for cls in (SizeFlow, LoopFlow, EndlessFlow)}[sys.argv.pop(1)].main()
