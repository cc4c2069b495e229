"""The drain cap (``_scheduler``): quick plain tasks drain in few threads, but plain tasks
that sleep all overlap, and tasks that compute at length never hold up the quick ones.

Asserted from recorded task times, never from wall-clock totals.
"""

from __future__ import annotations

import time

import pytest

from asyncflow import FlowSpec, Parameter, step
from asyncflow._runtime._scheduler import NARROW_DRAINS, drain_cap_move
from tests.flows.concurrency import SpinnersAndQuick, ThreadForeachSleep
from tests.test_concurrency import all_overlap, interval, intervals, max_overlap


@pytest.mark.anyio
async def test_sixteen_sleeping_plain_tasks_all_overlap(store: str) -> None:
    assert NARROW_DRAINS < 16  # else this says nothing about the cap
    run = await ThreadForeachSleep(store=store, echo=False).run(n=16, pause=0.3)
    spans = intervals(run, ["body"])
    assert len(spans) == 16
    assert all(end - start >= 0.29 for start, end in spans)
    assert all_overlap(spans)


@pytest.mark.anyio
async def test_sleeping_tasks_after_quick_ones_still_overlap(store: str) -> None:
    # 200 quick tasks first keep the cap narrow; the sleepers queued behind them must widen it.
    run = await QuickThenSleepy(store=store, echo=False).run(quick=200, sleepy=8, pause=0.3)
    spans = [interval(task) for task in run["body"] if task.index >= 200]
    assert len(spans) == 8
    assert all_overlap(spans)


@pytest.mark.anyio
async def test_plain_tasks_that_sleep_a_millisecond_overlap_beyond_the_narrow_cap(
    store: str,
) -> None:
    # The drains keep completing tasks (no stall), but the process is mostly idle: the cap
    # opens, and more than NARROW_DRAINS tasks sleep at once.
    run = await ThreadForeachSleep(store=store, echo=False).run(n=400, pause=0.001)
    assert max_overlap(intervals(run, ["body"])) > NARROW_DRAINS


@pytest.mark.anyio
@pytest.mark.parametrize("spinners", [1, NARROW_DRAINS], ids=["one-spinner", "every-drain"])
async def test_tasks_that_compute_at_length_never_hold_up_the_quick_ones(
    store: str, spinners: int
) -> None:
    # Every narrow drain thread busy with a task that holds the GIL for a second: the quick
    # tasks queued behind them end long before they do.
    run = await SpinnersAndQuick(store=store, echo=False).run(n=12, spinners=spinners, seconds=1.5)
    ended = run["join"].data.ended
    spun, quick = ended[:spinners], ended[spinners:]
    assert max(quick) < min(spun) - 0.5, (spun, quick)


@pytest.mark.anyio
async def test_max_workers_1_still_drains_one_task_at_a_time(store: str) -> None:
    run = await ThreadForeachSleep(store=store, max_workers=1, echo=False).run(n=4, pause=0.02)
    assert max_overlap(intervals(run, ["body"])) == 1


class QuickThenSleepy(FlowSpec):
    """One foreach: ``quick`` trivial plain tasks, then ``sleepy`` that sleep ``pause``."""

    quick = Parameter("quick", default=200)
    sleepy = Parameter("sleepy", default=8)
    pause = Parameter("pause", default=0.3)

    @step
    def start(self) -> None:
        self.items = list(range(self.quick + self.sleepy))
        self.next(self.body, foreach="items")

    @step
    def body(self) -> None:
        if self.input >= self.quick:
            time.sleep(self.pause)
        self.next(self.join)

    @step
    def join(self, inputs: object) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


@pytest.mark.parametrize(
    ("narrow", "drains", "busy", "progressed", "cpus", "move"),
    [
        (True, 2, 1.0, True, 2, None),  # quick tasks holding the GIL: stay narrow
        (True, 2, 1.3, True, 8, None),  # ... with the writer's SQLite work beside them
        (True, 2, 1.0, False, 2, "widen"),  # nothing completed: stuck
        (True, 2, 0.2, True, 2, "widen"),  # tasks sleeping or waiting on I/O
        (True, 2, 1.9, True, 8, "widen"),  # each drain computing outside the GIL, CPUs to spare
        (True, 2, 1.9, True, 2, None),  # ... but no CPU to spare
        (True, 1, 0.1, False, 2, None),  # fewer drains than the cap: the cap holds nothing back
        (False, 16, 1.1, True, 2, "narrow"),  # wide, about one CPU: the GIL is shared
        (False, 16, 0.3, True, 2, None),  # wide and sleeping: stay wide
        (False, 16, 6.0, True, 8, None),  # wide and computing outside the GIL: stay wide
        (False, 16, 1.1, False, 2, None),  # nothing completed: not the time to narrow
    ],
)
def test_drain_cap_moves(
    narrow: bool, drains: int, busy: float, progressed: bool, cpus: int, move: str | None
) -> None:
    assert NARROW_DRAINS == 2  # the table is written for it
    assert drain_cap_move(narrow, drains, busy, progressed, cpus) == move
