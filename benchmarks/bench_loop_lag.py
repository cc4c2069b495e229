"""How long the host's event loop is held up while a flow runs beside it.

A ticker coroutine sleeps 5 ms at a time on the same loop that awaits ``run()`` and records
how late each wake-up is. The figure is the worst lateness (max lag) during the run, and the
baseline is the same ticker while the loop runs nothing else (same process, same run).

Scenarios (each a real flow on a real store file):

* ``sleep``: 16 plain steps that block in ``time.sleep`` (I/O-like: they release the GIL);
* ``cpu``: 16 plain steps of pure-Python arithmetic at ``max_workers=16`` (they hold the GIL);
* ``save``: a coroutine step that sets a 200 MB bytes value;
* ``load``: a plain step that reads that 200 MB value back;
* ``client-list`` / ``client-numpy``: the client's ``await task.adata(...)`` of a 36 MB
  msgpack list of 4 million floats, and of a 64 MB numpy array.

    python benchmarks/bench_loop_lag.py --repeat 3
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Awaitable, Callable

import anyio

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import Report, parse_args, progress, scratch_dir

from asyncflow import FlowSpec, Parameter, step

BIG = 200 << 20
SPIN = 3_000_000  # additions per CPU task: ~0.2 s of pure Python each


class SleepFan(FlowSpec):
    @step
    def start(self) -> None:
        self.items = list(range(16))
        self.next(self.work, foreach="items")

    @step
    def work(self) -> None:
        time.sleep(0.3)
        self.next(self.join)

    @step
    def join(self, inputs: object) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class CpuFan(FlowSpec):
    @step
    def start(self) -> None:
        self.items = list(range(16))
        self.next(self.work, foreach="items")

    @step
    def work(self) -> None:
        total = 0
        for i in range(SPIN):
            total += i
        self.total = total
        self.next(self.join)

    @step
    def join(self, inputs: object) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class BigSave(FlowSpec):
    @step
    async def start(self) -> None:
        self.big = bytes(BIG)  # calloc: the step itself does not touch the pages
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class BigLoad(FlowSpec):
    @step
    async def start(self) -> None:
        self.big = os.urandom(BIG)
        self.next(self.read)

    @step
    def read(self) -> None:
        self.n = len(self.big)
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class Keep(FlowSpec):
    kind = Parameter("kind", default="numpy")

    @step
    def start(self) -> None:
        import numpy as np

        array = np.random.default_rng(0).random(8_000_000)  # 64 MB
        self.value = array[:4_000_000].tolist() if self.kind == "list" else array
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


async def max_lag(work: Callable[[], Awaitable[object]]) -> float:
    """The worst lateness of a 5 ms ticker while ``work()`` runs on the same loop."""
    lags: list[float] = []
    done = anyio.Event()

    async def ticker() -> None:
        while not done.is_set():
            before = time.perf_counter()
            await anyio.sleep(0.005)
            lags.append(time.perf_counter() - before - 0.005)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        try:
            await work()
        finally:
            done.set()
    return max(lags) if lags else float("nan")


async def scenario(name: str, folder: str) -> float:
    store = os.path.join(folder, f"{name}.db")
    if name == "idle":
        return await max_lag(lambda: anyio.sleep(1.0))
    if name == "sleep":
        return await max_lag(lambda: SleepFan(store=store, max_workers=16, echo=False).run())
    if name == "cpu":
        return await max_lag(lambda: CpuFan(store=store, max_workers=16, echo=False).run())
    if name == "save":
        return await max_lag(lambda: BigSave(store=store, echo=False).run())
    if name.startswith("client-"):
        from asyncflow import Flow

        path = os.path.join(folder, f"{name}.db")
        if not os.path.exists(path):
            await Keep(store=path, echo=False).run(kind=name.removeprefix("client-"))
        flow = await Flow.aopen("Keep", path)
        run = await flow.alatest_run()
        assert run is not None
        return await max_lag(lambda: run.adata("value"))
    # "load": the 200 MB value is written first, outside the measured part, then read in a
    # plain step of a resumed run (which re-runs `read` only).
    await BigLoad(store=store, echo=False).run()
    return await max_lag(lambda: BigLoad(store=store, echo=False).resume(step="read"))


def main() -> None:
    args = parse_args(__doc__ or "", repeat=3)
    names = ["idle", "sleep", "cpu", "save", "load", "client-list", "client-numpy"]
    samples: dict[str, list[float]] = {name: [] for name in names}
    with scratch_dir(args.dir, "af-lag-") as folder:
        for i in range(args.repeat):
            for name in names:
                progress(f"repeat {i + 1}/{args.repeat}: {name}")
                samples[name].append(anyio.run(scenario, name, folder))
    report = Report("event-loop lag while a flow runs (max lateness of a 5 ms ticker)", args)
    report.add("idle loop (baseline)", samples["idle"], "ms", scale=1000)
    labels = {
        "sleep": "16 plain steps in time.sleep, max_workers=16",
        "cpu": "16 CPU-bound plain steps, max_workers=16",
        "save": "coroutine step sets 200 MB bytes",
        "load": "plain step reads 200 MB bytes",
        "client-list": "client awaits a 36 MB msgpack list of floats",
        "client-numpy": "client awaits a 64 MB numpy array",
    }
    for name, label in labels.items():
        report.add(
            label,
            samples[name],
            "ms",
            scale=1000,
            baseline="idle loop",
            baseline_samples=samples["idle"],
        )
    report.print()


if __name__ == "__main__":
    main()
