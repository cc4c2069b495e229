"""The event loop is never held up by a coroutine step's large values (generous bounds).

A ticker coroutine on the loop that runs the flow records how late each 2 ms sleep wakes up.
A coroutine step reads, then sets, a 200 MB value, as ``bytes`` (msgpack) and inside an
object of the user's (pickle). Before the fix, reading, checking and decoding ran on the
loop, and encoding and decoding copied the value in one call holding the GIL: the loop
stalled 0.15-0.4 s. The real targets (p99 <= 20 ms, max <= 50 ms) are measured by
``benchmarks/bench_loop_lag.py``; this test only catches a return of the stall.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio
import pytest

from asyncflow import Flow
from tests.flows.loop_lag import SIZE, BigInCoroutine, ReadByName, SharedEarly

pytestmark = pytest.mark.anyio

BOUND = 0.12  # seconds: stalls were 0.15-0.4 s, and are ~0.03 s now


async def max_lag(work: Callable[[], Awaitable[object]]) -> float:
    """The worst lateness of a 2 ms ticker while ``work()`` runs on the same loop."""
    lags: list[float] = []
    done = anyio.Event()

    async def ticker() -> None:
        while not done.is_set():
            before = time.perf_counter()
            await anyio.sleep(0.002)
            lags.append(time.perf_counter() - before - 0.002)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        try:
            await work()
        finally:
            done.set()
    return max(lags)


async def best_of_three(measure: Callable[[], Awaitable[float]]) -> list[float]:
    """Up to three measures, stopping at the first within bound. A stall comes back on every
    try; a hiccup of the machine's own (a shared 2-core machine under load once gave 0.13 s)
    does not, so the best try is what a test checks."""
    tries = [await measure()]
    while len(tries) < 3 and tries[-1] >= BOUND:
        tries.append(await measure())
    return tries


@pytest.mark.parametrize("kind", ["bytes", "pickle"])
async def test_a_coroutine_step_reading_and_setting_a_large_value_never_stalls_the_loop(
    store: str, kind: str
) -> None:
    # The first run: the plain step's value is still pending in memory when the coroutine
    # step reads it; the resume: it is read from the file.
    async def both() -> float:
        first = await max_lag(lambda: BigInCoroutine(store=store, echo=False).run(kind=kind))
        again = await max_lag(lambda: BigInCoroutine(store=store, echo=False).resume(step="touch"))
        return max(first, again)

    tries = await best_of_three(both)
    assert min(tries) < BOUND, tries
    run = await (await Flow.aopen("BigInCoroutine", store)).alatest_run()
    assert run is not None and run.successful
    assert await (await run.astep("touch")).adata("size") == SIZE


@pytest.mark.parametrize("kind", ["bytes", "pickle"])
async def test_the_client_awaiting_a_large_value_never_stalls_the_loop(
    store: str, kind: str
) -> None:
    await BigInCoroutine(store=store, echo=False).run(kind=kind)
    values: list[object] = []

    async def read() -> None:
        run = await (await Flow.aopen("BigInCoroutine", store)).alatest_run()
        assert run is not None
        values.append(await (await run.astep("touch")).adata("made"))

    tries = await best_of_three(lambda: max_lag(read))
    assert min(tries) < BOUND, tries
    made = values[0]
    assert len(made if isinstance(made, bytes) else made.payload) == SIZE + 1


async def test_values_read_before_a_coroutine_step_starts_are_each_its_own_copy(
    store: str,
) -> None:
    # Read, checked and decoded in a thread before the step (_prefetch): one object per
    # name and per input, even where the stored values are the same blob (Artifacts 5).
    run = await SharedEarly(store=store, echo=False).run()
    assert await (await run.astep("join")).adata("seen") == [0.0, 0.0, 0.0, True, True]


async def test_a_coroutine_step_may_read_an_artifact_by_name_in_a_thread(store: str) -> None:
    # What README "What can still hold up the loop" advises for a large value read by name.
    run = await ReadByName(store=store, echo=False).run()
    assert await (await run.astep("use")).adata("seen") == [2 << 20, [1, 2, 3]]
