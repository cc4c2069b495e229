"""The drain cap (``_scheduler``): quick plain tasks drain in few threads, but plain tasks
that sleep all overlap, and tasks that compute at length never hold up the quick ones.

Asserted from recorded task times, never from wall-clock totals.
"""

from __future__ import annotations

import time

import pytest

from asyncflow import FlowSpec, Parameter, step
from asyncflow._runtime._drain_cap import NARROW_DRAINS, DrainCap, drain_cap_move
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
    ("drains", "busy", "progressed", "cpus", "opens"),
    [
        (2, 1.0, True, 2, False),  # quick tasks holding the GIL: stay narrow
        (2, 0.6, True, 8, False),  # ... part of it taken by the writer and the loop
        (2, 1.0, False, 2, True),  # nothing completed: stuck
        (2, 0.1, True, 2, True),  # tasks sleeping or waiting on I/O
        (2, 1.9, True, 8, True),  # each drain computing outside the GIL, CPUs to spare
        (2, 1.9, True, 2, False),  # ... but no CPU to spare
        (1, 0.1, False, 2, False),  # fewer drains than the cap: the cap holds nothing back
    ],
)
def test_when_the_narrow_drain_cap_opens(
    drains: int, busy: float, progressed: bool, cpus: int, opens: bool
) -> None:
    assert NARROW_DRAINS == 2  # the table is written for it
    assert drain_cap_move(drains, busy, progressed, cpus) is opens


def test_the_drain_cap_narrows_when_wide_is_no_faster_and_looks_again_later() -> None:
    cap = DrainCap(16)
    t, cpu, done = 100.0, 0.0, 0
    assert not cap.tick(t, cpu, done, 2)  # the first tick only starts measuring
    t, cpu, done = t + 0.011, cpu + 0.0005, done + 22  # sleeping drains over a window: 0.05 CPU
    assert cap.tick(t, cpu, done, 2) and cap.cap == 16  # opened: 2,000 tasks/s narrow
    t, cpu, done = t + 0.03, cpu + 0.01, done + 600  # wide: 20,000 tasks/s, keep it
    assert not cap.tick(t, cpu, done, 16) and cap.cap == 16
    t, cpu, done = t + 0.03, cpu + 0.01, done + 600
    assert not cap.tick(t, cpu, done, 16) and cap.cap == 16
    for _ in range(8):  # still faster, but WIDE_HOLD_SECONDS later it narrows to look again
        t, cpu, done = t + 0.03, cpu + 0.01, done + 600
        cap.tick(t, cpu, done, 16)
    assert cap.cap == NARROW_DRAINS
    t, cpu, done = t + 0.011, cpu + 0.0005, done + 22
    assert cap.tick(t, cpu, done, 2) and cap.cap == 16  # still sleeping: open again
    t, cpu, done = t + 0.03, cpu + 0.02, done + 60  # wide is no faster now: narrow
    assert not cap.tick(t, cpu, done, 16)
    assert cap.cap == NARROW_DRAINS


def test_quick_ticks_alone_do_not_open_the_narrow_cap() -> None:
    # One tick that looks idle (a task mid-way when it ended) is not enough: the CPU share
    # is measured over NARROW_WINDOW_SECONDS.
    cap = DrainCap(16)
    cap.tick(100.0, 0.0, 0, 2)
    assert not cap.tick(100.0025, 0.0, 1, 2)  # idle-looking tick, but tasks completed
    assert not cap.tick(100.011, 0.008, 100, 2)  # the window: 0.73 CPU, quick tasks
    assert cap.cap == NARROW_DRAINS
    assert cap.tick(100.0135, 0.008, 100, 2)  # a tick with nothing completed: stuck
    assert cap.cap == 16


def test_max_workers_at_most_the_narrow_cap_leaves_nothing_to_decide() -> None:
    assert DrainCap(NARROW_DRAINS).fixed and DrainCap(1).cap == 1
    assert not DrainCap(NARROW_DRAINS + 1).fixed
