"""Disk: what a finished run leaves beside the store, and how big the store is.

    python benchmarks/bench_disk.py [--mib 100] [--tasks 1000] [--repeat 3]

Each run goes in a child process (``python bench_disk.py child FLOW ...``), as from the
shell, and the parent then looks at the folder: the store file, any ``-wal``/``-shm`` left
beside it, the payload bytes the store holds (``asyncflow.stats``), and the ratio. Cases:

* a trivial run (one small artifact) into a new store;
* one run storing ``--mib`` MiB of random float64 (one numpy artifact) into a new store;
* a foreach of ``--tasks`` tasks, each storing a small distinct value;
* the warm per-run cost of the end-of-run checkpoint: ``--runs`` trivial runs back to back
  in one process (the truncating checkpoint runs at the end of each), median per run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from asyncflow import FlowSpec, Parameter, step


class TinyDisk(FlowSpec):
    """start -> end, one small artifact."""

    @step
    def start(self) -> None:
        self.x = 1
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class BulkDisk(FlowSpec):
    """One large incompressible array."""

    mib = Parameter("mib", default=100)

    @step
    def start(self) -> None:
        self.values = np.random.default_rng(0).random(self.mib * (1 << 20) // 8)
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class WideDisk(FlowSpec):
    """A foreach of small distinct values."""

    tasks = Parameter("tasks", default=1000)

    @step
    def start(self) -> None:
        self.items = list(range(self.tasks))
        self.next(self.work, foreach="items")

    @step
    def work(self) -> None:
        self.value = f"value {self.input}" * 4
        self.next(self.join)

    @step
    def join(self, inputs: object) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


FLOWS = {"TinyDisk": TinyDisk, "BulkDisk": BulkDisk, "WideDisk": WideDisk}


def child_run(store: str, flow: str, *params: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, __file__, "child", flow, "run", "--quiet", "--store", store, *params],
        check=True,
    )
    return time.perf_counter() - start


def look(store: str) -> dict[str, object]:
    import asyncflow

    left = {s: os.path.getsize(store + s) for s in ("-wal", "-shm") if os.path.exists(store + s)}
    size = os.path.getsize(store)
    data = asyncflow.stats(store).stored_bytes
    return {"file": size, "left beside": left or "nothing", "payload": data,
            "file / payload": round(size / data, 4) if data else None}  # fmt: skip


def warm_runs(folder: str, runs: int) -> float:
    store = os.path.join(folder, "warm.db")
    times = []

    async def main() -> None:
        flow = TinyDisk(store=store, echo=False)
        await flow.run()
        for _ in range(runs):
            start = time.perf_counter()
            await flow.run()
            times.append(time.perf_counter() - start)

    asyncio.run(main())
    return statistics.median(times) * 1000


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "child":
        flow = FLOWS[sys.argv[2]]
        sys.argv[1:3] = []
        flow.main()
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=100)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for attempt in range(args.repeat):
        with tempfile.TemporaryDirectory() as folder:
            cases = [
                ("trivial run", "TinyDisk", ()),
                (f"{args.mib} MiB numpy run", "BulkDisk", ("--mib", str(args.mib))),
                (f"foreach of {args.tasks}", "WideDisk", ("--tasks", str(args.tasks))),
            ]
            for name, flow, params in cases:
                store = os.path.join(folder, f"{flow}.db")
                took = child_run(store, flow, *params)
                print(f"[{attempt + 1}] {name}: {took:.2f} s (process included); {look(store)}")
            print(f"[{attempt + 1}] warm trivial run, median of {args.runs}: "
                  f"{warm_runs(folder, args.runs):.2f} ms per run")  # fmt: skip


if __name__ == "__main__":
    main()
