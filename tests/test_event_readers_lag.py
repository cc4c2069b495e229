"""A reader of many events never holds the event loop for long (README: the client never
makes an event loop wait for the store).

Before the fix, one late reader of a ~20,000-event run held the loop 230-390 ms: the whole
log was read in one go, decoded and made into Event objects on the loop thread, and handed
out without the loop running in between. The targets are measured by
``benchmarks/bench_events.py --readers``; these tests catch a return of the stall, with a
generous bound for a loaded machine.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from asyncflow import Runner
from tests.flows.event_flows import Wide
from tests.test_loop_lag import max_lag

pytestmark = pytest.mark.anyio

BOUND = 0.1  # seconds: 0.23-0.39 s before, 0.01-0.05 s after
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
