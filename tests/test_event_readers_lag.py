"""A reader of many events never holds the event loop for long (README: the client never
makes an event loop wait for the store).

Before the fix, one late reader of a ~20,000-event run held the loop 230-390 ms: the whole
log was read in one go, decoded and made into Event objects on the loop thread, and handed
out without the loop running in between. The targets are measured by
``benchmarks/bench_events.py --readers``; these tests catch a return of the stall, with a
generous bound for a loaded machine.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from asyncflow import Runner
from tests.flows.event_flows import Wide
from tests.test_loop_lag import max_lag

pytestmark = pytest.mark.anyio

BOUND = 0.15  # seconds: 0.3-0.6 s before, 0.01-0.05 s after (up to 0.1 s at load 9)
N = 7000  # tasks, three events each (a TaskStarted, a LogLine, a TaskFinished)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # a Runner's events are read on its asyncio loop


@pytest.fixture
def no_full_collections() -> Iterator[None]:
    # Tens of thousands of new Event objects trigger the garbage collector's full passes over
    # the whole heap (0.1 s in a test process): a cost of the process, not of the reader.
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@pytest.mark.usefixtures("no_full_collections")
async def test_one_late_reader_of_a_long_run_never_stalls_the_loop(store: str) -> None:
    async with Runner(store=store) as runner:
        handle = await runner.start(Wide(store=store, echo=False), n=N)
        run = await handle.wait()
        counts: list[int] = []

        async def live_reader() -> None:
            counts.append(len([ev async for ev in handle.events()]))

        async def client_reader() -> None:
            counts.append(len([ev async for ev in run.aevents()]))

        lags = [await max_lag(live_reader), await max_lag(client_reader)]
    assert counts[0] == counts[1] > 3 * N, counts
    assert max(lags) < BOUND, lags


@pytest.mark.usefixtures("no_full_collections")
async def test_two_hundred_readers_of_an_ended_run_never_stall_the_loop(store: str) -> None:
    # Before: each reader read, decoded and made every event itself (its own connection and
    # thread for run.aevents()): 0.65-0.9 s stalls. Now readers at the same place share a read.
    async with Runner(store=store) as runner:
        handle = await runner.start(Wide(store=store, echo=False), n=400)
        await handle.wait()
        counts: list[int] = []

        async def readers() -> None:
            async def one() -> int:
                return len([ev async for ev in handle.events()])

            counts.extend(await asyncio.gather(*[one() for _ in range(200)]))

        lag = await max_lag(readers)
    assert len(set(counts)) == 1 and counts[0] > 3 * 400, set(counts)
    assert lag < 2 * BOUND, lag  # 1.5 s before
