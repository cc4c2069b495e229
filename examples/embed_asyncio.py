"""asyncflow inside an ordinary asyncio program.

The flow runs as one task of a task group while another task keeps ticking: neither the
coroutine steps (which await) nor the plain steps (which run in worker threads) hold up the
event loop. Afterwards the program reads the results with the awaitable client.

    python examples/embed_asyncio.py     # store: $ASYNCFLOW_STORE, else ./asyncflow.db
"""

import asyncio
import itertools
import time

from asyncflow import Flow, FlowSpec, step


class EmbeddedFlow(FlowSpec):
    """Fetch three pages concurrently (simulated), crunch each in a thread, add up."""

    @step
    async def start(self):
        self.pages = ["alpha", "beta", "gamma"]
        self.next(self.fetch, foreach="pages")

    @step
    async def fetch(self):
        await asyncio.sleep(0.2)  # stands for network I/O: the loop keeps running
        self.body = self.input * 1000
        self.next(self.crunch)

    @step
    def crunch(self):
        time.sleep(0.2)  # stands for CPU work: it occupies a worker thread, not the loop
        self.length = len(self.body)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total_length = sum(inp.length for inp in inputs)
        self.next(self.end)

    @step
    async def end(self):
        pass


async def ticker(done, ticks):
    """Record a tick every 20 ms until ``done`` is set; print every tenth."""
    while not done.is_set():
        ticks.append(time.perf_counter())
        if len(ticks) % 10 == 0:
            print(f"  tick {len(ticks)}", flush=True)
        await asyncio.sleep(0.02)


async def run_flow(done):
    try:
        # No store given: $ASYNCFLOW_STORE, else asyncflow.db in the current directory.
        # echo=False keeps the steps' output in the store instead of on the terminal.
        return await EmbeddedFlow(echo=False).run()
    finally:
        done.set()


async def main():
    done = asyncio.Event()
    ticks = []
    async with asyncio.TaskGroup() as tg:
        tg.create_task(ticker(done, ticks))
        flow_task = tg.create_task(run_flow(done))
    run = flow_task.result()
    gap = max((b - a for a, b in itertools.pairwise(ticks)), default=0.0)
    print(f"run {run.pathspec} {run.status}")
    print(f"the ticker ticked {len(ticks)} times while the flow ran (longest gap {gap:.3f} s)")

    # Read the results back without blocking the loop: the client's awaitable twins.
    async with Flow.aopen("EmbeddedFlow") as flow:
        latest = await flow.alatest_run()
        total = await latest.adata("total_length")
        fetch = await latest.astep("fetch")
        bodies = [len(await task.adata("body")) for task in fetch]
    print(f"run {latest.id}: total_length = {total}, fetched bodies of {bodies} characters")


if __name__ == "__main__":
    asyncio.run(main())
