"""How long readers of a run's events hold up the event loop (issue 12, README "Events").

A ticker coroutine sleeps 10 ms at a time on the loop the readers run on and records how late
each wake-up is (max and p99 over the scenario). Scenarios, each on a real store file:

* ``one-late-handle`` / ``one-late-client``: one reader of a finished 10,000-wide foreach
  (about 20,000 events), ``handle.events()`` (the runner's hub, reading back from the store)
  and ``run.aevents()`` (the client);
* ``200-live`` / ``200-ended``: 200 ``handle.events()`` readers of a 500-task run started
  together, while it runs and after it ended.

Run: ``python benchmarks/bench_event_readers.py [--repeat 3]``; prints one line a scenario
(the median of the repeats' max lag, and every repeat's).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from asyncflow import Runner
from asyncflow.events import Event
from tests.flows.event_flows import SlowFlow, Wide


async def lag_of(work: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """(max, p99) lateness in seconds of a 10 ms ticker while ``work()`` runs."""
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            before = time.monotonic()
            await asyncio.sleep(0.01)
            lags.append(time.monotonic() - before - 0.01)

    task = asyncio.create_task(ticker())
    try:
        await work()
    finally:
        stop.set()
        await task
    lags.sort()
    return lags[-1], lags[int(len(lags) * 0.99)]


async def count(it: AsyncIterator[Event]) -> int:
    return len([1 async for _ in it])


async def one_late(store: str) -> dict[str, tuple[float, float]]:
    async with Runner(store=store) as runner:
        handle = await runner.start(Wide(store=store, echo=False), n=10_000)
        run = await handle.wait()
        gc.collect()
        return {
            "one-late-handle": await lag_of(lambda: count(handle.events())),
            "one-late-client": await lag_of(lambda: count(run.aevents())),
        }


async def many(store: str) -> dict[str, tuple[float, float]]:
    async with Runner(store=store) as runner:
        handle = await runner.start(SlowFlow(store=store, echo=False), n=500, pause=0.02)

        async def readers() -> None:
            await asyncio.gather(*[count(handle.events()) for _ in range(200)])

        live = await lag_of(readers)
        await handle.wait()
        gc.collect()
        ended = await lag_of(readers)
    return {"200-live": live, "200-ended": ended}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    found: dict[str, list[tuple[float, float]]] = {}
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            for scenario in (one_late, many):
                path = os.path.join(tmp, f"{scenario.__name__}.db")
                for name, lag in asyncio.run(scenario(path)).items():
                    found.setdefault(name, []).append(lag)
    for name, lags in found.items():
        worst = statistics.median(m for m, _ in lags)
        each = ", ".join(f"{m * 1000:.0f}/{p * 1000:.0f}" for m, p in lags)
        print(f"{name:16s} max lag median {worst * 1000:4.0f} ms   (max/p99 ms: {each})")


if __name__ == "__main__":
    main()
