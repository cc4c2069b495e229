"""Plain tasks of a wide foreach (drained by the scheduler's threads): tasks that sleep all
overlap, also behind quick ones and when they sleep only a millisecond, and tasks that compute
at length never hold up the quick ones. Any cap on the draining threads (issue 15:
benchmarks/patches/scheduler-drain-cap-issue15.diff) must keep these.

Asserted from recorded task times, never from wall-clock totals.
"""

from __future__ import annotations

import time

import pytest

from asyncflow import FlowSpec, Parameter, step
from tests.flows.concurrency import SpinnersAndQuick, ThreadForeachSleep
from tests.test_concurrency import all_overlap, interval, intervals, max_overlap


@pytest.mark.anyio
async def test_sixteen_sleeping_plain_tasks_all_overlap(store: str) -> None:
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
async def test_plain_tasks_that_sleep_a_millisecond_overlap_more_than_two_at_once(
    store: str,
) -> None:
    # The drains keep completing tasks (nothing looks stuck), yet many sleep at once.
    run = await ThreadForeachSleep(store=store, echo=False).run(n=400, pause=0.001)
    assert max_overlap(intervals(run, ["body"])) > 2


@pytest.mark.anyio
@pytest.mark.parametrize("spinners", [1, 2], ids=["one-spinner", "two-spinners"])
async def test_tasks_that_compute_at_length_never_hold_up_the_quick_ones(
    store: str, spinners: int
) -> None:
    # Draining threads busy with tasks that hold the GIL for 1.5 s: the quick tasks queued
    # behind them end long before they do.
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
