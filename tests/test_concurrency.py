"""Concurrency, asserted from recorded task times (never from wall-clock totals).

A task's interval is ``[task.started_at, task.finished_at]`` as the client reads it back, or
the times a step recorded into its artifacts.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable

import anyio
import pytest

from asyncflow import Flow, FlowSpec, Run, Task
from tests.flows.concurrency import (
    AsyncForeachSleep,
    BlockingStep,
    BranchesSleep,
    BusyCoroutines,
    MixedForeachSleep,
    ThreadForeachSleep,
)

Interval = tuple[float, float]


def interval(task: Task) -> Interval:
    return (task.started_at.timestamp(), task.finished_at.timestamp())


def intervals(run: Run, steps: Iterable[str] | None = None) -> list[Interval]:
    """The intervals of every task of ``steps`` (default: every step of the run)."""
    names = [step.name for step in run] if steps is None else list(steps)
    return [interval(task) for name in names for task in run[name]]


def all_overlap(spans: list[Interval]) -> bool:
    """True if one instant lies inside every interval."""
    return max(s for s, _ in spans) < min(e for _, e in spans)


def max_overlap(spans: list[Interval]) -> int:
    """The largest number of intervals that contain one instant (touching ends don't count)."""
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    best = running = 0
    for _, delta in events:  # at equal times an end (-1) sorts before a start (+1)
        running += delta
        best = max(best, running)
    return best


def assert_disjoint(spans: list[Interval]) -> None:
    ordered = sorted(spans)
    for (_, end), (start, _) in itertools.pairwise(ordered):
        assert start >= end, f"a task started at {start} before another ended at {end}"


# --- sanity of the helpers (they decide every test below) -------------------------------------


def test_overlap_helpers() -> None:
    assert max_overlap([(0, 1), (1, 2), (2, 3)]) == 1
    assert max_overlap([(0, 2), (1, 3), (1.5, 4), (3.5, 5)]) == 3
    assert all_overlap([(0, 2), (1, 3)]) and not all_overlap([(0, 1), (1, 2)])
    assert_disjoint([(2, 3), (0, 1), (1, 2)])
    with pytest.raises(AssertionError):
        assert_disjoint([(0, 2), (1, 3)])


# --- things run at the same time ----------------------------------------------------------------


@pytest.mark.anyio
async def test_branches_overlap(store: str) -> None:
    run = await BranchesSleep(store=store, echo=False).run(pause=0.2)
    spans = intervals(run, ["a", "b", "c"])
    assert all(end - start >= 0.19 for start, end in spans)  # the sleep is inside the record
    assert all_overlap(spans)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "flow", [AsyncForeachSleep, ThreadForeachSleep], ids=["async-anyio-sleep", "plain-time-sleep"]
)
async def test_foreach_tasks_overlap(flow: type[FlowSpec], store: str) -> None:
    run = await flow(store=store, echo=False).run(n=6, pause=0.2)
    spans = intervals(run, ["body"])
    assert len(spans) == 6
    assert all(end - start >= 0.19 for start, end in spans)
    assert all_overlap(spans)
    factor = 10 if flow is AsyncForeachSleep else 100
    assert run["join"].data.outs == [i * factor for i in range(6)]


@pytest.mark.anyio
async def test_mixed_foreach_tasks_overlap(store: str) -> None:
    run = await MixedForeachSleep(store=store, echo=False).run(n=4, pause=0.2)
    assert all_overlap(intervals(run, ["body_async", "body_plain"]))


# --- max_workers ---------------------------------------------------------------------------------

LIMITED = [
    pytest.param(BranchesSleep, {"pause": 0.05}, id="branches-async-and-plain"),
    pytest.param(AsyncForeachSleep, {"n": 4, "pause": 0.05}, id="async-foreach"),
    pytest.param(ThreadForeachSleep, {"n": 4, "pause": 0.05}, id="plain-foreach"),
    pytest.param(MixedForeachSleep, {"n": 2, "pause": 0.05}, id="mixed-foreach"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("flow", "params"), LIMITED)
async def test_max_workers_1_runs_one_task_at_a_time(
    flow: type[FlowSpec], params: dict[str, float], store: str
) -> None:
    run = await flow(store=store, max_workers=1, echo=False).run(**params)
    assert run.successful
    spans = intervals(run)  # every task of the run, joins and all
    assert len(spans) >= 6
    assert_disjoint(spans)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("flow", "params", "bodies"),
    [
        pytest.param(AsyncForeachSleep, {"n": 8}, ["body"], id="async-foreach"),
        pytest.param(ThreadForeachSleep, {"n": 8}, ["body"], id="plain-foreach"),
        pytest.param(MixedForeachSleep, {"n": 4}, ["body_async", "body_plain"], id="mixed"),
    ],
)
async def test_max_workers_3_runs_at_most_3_tasks_at_once(
    flow: type[FlowSpec], params: dict[str, int], bodies: list[str], store: str
) -> None:
    run = await flow(store=store, max_workers=3, echo=False).run(pause=0.1, **params)
    assert run.successful
    assert len(intervals(run, bodies)) == 8
    assert max_overlap(intervals(run)) <= 3
    assert max_overlap(intervals(run, bodies)) == 3  # the limit is used, not just respected


def test_max_workers_must_be_positive(store: str) -> None:
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="max_workers"):
            BranchesSleep(store=store, max_workers=bad)  # type: ignore[arg-type]


# --- the event loop stays free ------------------------------------------------------------------


@pytest.mark.anyio
async def test_coroutine_steps_that_never_await_let_the_loop_in(store: str) -> None:
    # 300 tasks of 2 ms each, none awaiting, one at a time (as a chain's): the worker running
    # them yields often enough (every few ms, not after each task) that a ticker keeps ticking.
    ticks: list[float] = []
    stop = anyio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            ticks.append(time.monotonic())
            await anyio.sleep(0.005)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        run = await BusyCoroutines(store=store, echo=False, max_workers=1).run()
        stop.set()

    t0 = run["join"].data.t0
    t1 = max(task.data.t0 for task in run["body"]) + 0.002
    assert t1 - t0 >= 0.59
    inside = [t for t in ticks if t0 <= t <= t1]
    assert len(inside) >= 10, f"only {len(inside)} ticks while the tasks ran for {t1 - t0:.2f} s"
    gaps = [b - a for a, b in zip([t0, *inside], [*inside, t1], strict=True)]
    assert max(gaps) < 0.1, f"the loop was blocked for {max(gaps):.3f} s"


@pytest.mark.anyio
async def test_a_foreach_of_coroutine_steps_that_never_await_yields_after_each_task(
    store: str,
) -> None:
    # 400 tasks of 0.25 ms, none awaiting, 16 workers on the loop: between two turns of a
    # ticker that is always ready, each worker runs at most one task (not a time slice each:
    # 16 workers x 2 ms slices held the loop ten times longer). Counted, not timed: a slow
    # machine makes the tasks longer, never the count higher.
    ticks: list[float] = []
    stop = anyio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            ticks.append(time.monotonic())
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        run = await BusyCoroutines(store=store, echo=False).run(n=400, busy=0.00025)
        stop.set()

    starts = sorted(task.data.t0 for task in run["body"])
    inside = [t for t in ticks if starts[0] <= t <= starts[-1]]
    assert len(inside) >= 10
    per_turn = [sum(1 for s in starts if a < s < b) for a, b in itertools.pairwise(inside)]
    assert max(per_turn) <= 16 + 2, f"{max(per_turn)} tasks ran between two turns of the loop"


@pytest.mark.anyio
async def test_plain_step_does_not_block_the_loop(store: str) -> None:
    ticks: list[float] = []
    stop = anyio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            ticks.append(time.monotonic())
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        run = await BlockingStep(store=store, echo=False).run()
        stop.set()

    t0, t1 = run["block"].data.t0, run["block"].data.t1
    assert t1 - t0 >= 0.29
    inside = [t for t in ticks if t0 <= t <= t1]
    assert len(inside) >= 10, f"only {len(inside)} ticks while the step slept 0.3 s"
    gaps = [b - a for a, b in zip([t0, *inside], [*inside, t1], strict=True)]
    assert max(gaps) < 0.1, f"the loop was blocked for {max(gaps):.3f} s"


@pytest.mark.anyio
async def test_several_runs_at_once_on_one_store(store: str) -> None:
    runs: dict[str, Run] = {}

    async def launch(key: str, flow: FlowSpec, n: int) -> None:
        runs[key] = await flow.run(n=n)

    threads = ThreadForeachSleep(store=store, echo=False)  # one object, two runs at once
    async with anyio.create_task_group() as tg:
        tg.start_soon(launch, "thread3", threads, 3)
        tg.start_soon(launch, "thread5", threads, 5)
        tg.start_soon(launch, "async4", AsyncForeachSleep(store=store, echo=False), 4)

    assert all(run.status == "succeeded" for run in runs.values())
    ids = [run.id for run in runs.values()]
    assert len(set(ids)) == 3
    assert runs["thread3"].data.outs == [0, 100, 200]
    assert runs["thread5"].data.outs == [0, 100, 200, 300, 400]
    assert runs["async4"].data.outs == [0, 10, 20, 30]
    # they really ran at the same time: every run started before any finished
    starts = [run.created_at for run in runs.values()]
    ends = [run.finished_at for run in runs.values()]
    assert all(end is not None for end in ends)
    assert max(starts) < min(end for end in ends if end is not None)
    # and the store lists them all
    with Flow("ThreadForeachSleep", store=store) as flow:
        assert sorted(r.id for r in flow.runs()) == sorted([runs["thread3"].id, runs["thread5"].id])
    with Flow("AsyncForeachSleep", store=store) as flow:
        assert [r.id for r in flow.runs()] == [runs["async4"].id]
