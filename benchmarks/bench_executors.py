"""Where plain steps run: the cost of a task, and what it buys, on each executor.

* overhead: a foreach of 1,000 trivial plain steps (``--quick``: 100), wall time per task,
  on threads, the process pool and Dask (a LocalCluster of 2 worker processes started
  before the timing; its start-up is reported on its own);
* speed-up: an 8-wide foreach of 0.5 s of pure-Python work per task, on the process pool and
  on Dask, as a ratio to the same foreach on threads (measured in the same run);
* shipping: a foreach of 100 Dask tasks that all read one 100 MB parent array: the bytes
  that reached the Dask workers (scattered once, then fetched by other workers, from the
  workers' own transfer logs), as a multiple of the array's size.

    python benchmarks/bench_executors.py --repeat 3 [--only overhead|speedup|shipping]

The process pool and Dask each get 2 workers (the machine's cores).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import anyio

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import Report, parse_args, progress, scratch_dir

from asyncflow import FlowSpec, Parameter, step

WORKERS = 2
SPIN_SECONDS = 0.5


class Trivial(FlowSpec):
    width = Parameter("width", default=1000)

    @step
    def start(self) -> None:
        self.items = list(range(self.width))
        self.next(self.work, foreach="items")

    @step
    def work(self) -> None:
        self.out = self.input + 1
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class Spin(FlowSpec):
    loops = Parameter("loops", default=1)

    @step
    def start(self) -> None:
        self.items = list(range(8))
        self.next(self.work, foreach="items")

    @step
    def work(self) -> None:
        total = 0
        for i in range(self.loops):
            total += i * i % 7
        self.total = total
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class Fan(FlowSpec):
    width = Parameter("width", default=100)
    mb = Parameter("mb", default=100)

    @step
    def start(self) -> None:
        import numpy as np

        self.arr = np.ones(self.mb * (1 << 20) // 8, dtype=np.float64)
        self.items = list(range(self.width))
        self.next(self.work, foreach="items")

    @step
    def work(self) -> None:
        self.total = float(self.arr[:: 1 << 16].sum()) + self.input
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


def _loops_for(seconds: float) -> int:
    # Calibrate Spin's loop to ``seconds`` of pure Python on an otherwise idle core: the
    # fastest of several short trials (a busy moment only makes a trial slower).
    n = 2_000_000
    best = float("inf")
    for _ in range(7):
        began = time.perf_counter()
        total = 0
        for i in range(n):
            total += i * i % 7
        best = min(best, time.perf_counter() - began)
    return int(n * seconds / best)


def _timed_run(flow: FlowSpec, **params: Any) -> float:
    began = time.perf_counter()
    anyio.run(lambda: flow.run(**params))
    return time.perf_counter() - began


def _cluster() -> tuple[Any, Any, float]:
    import dask
    import distributed

    began = time.perf_counter()
    settings = {
        "distributed.scheduler.allowed-failures": 0,
        "distributed.scheduler.active-memory-manager.start": False,
    }
    with dask.config.set(settings):
        cluster = distributed.LocalCluster(
            n_workers=WORKERS, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
    client = distributed.Client(cluster, set_as_default=False)
    return client, cluster, time.perf_counter() - began


def _options(name: str, client: Any) -> dict[str, Any]:
    if name == "process":
        return {"executor": "process", "processes": WORKERS}
    if name == "dask":
        return {"executor": "dask", "dask_client": client}
    return {"executor": "thread"}


def overhead_figures(report: Report, args: Any, folder: str, client: Any, names: list[str]) -> None:
    """Wall time per task of a wide foreach of trivial steps, per executor."""
    width = 100 if args.quick else 1000
    per: dict[str, list[float]] = {n: [] for n in names}
    for i in range(args.repeat):
        for name in names:
            progress(f"overhead {name} {i + 1}/{args.repeat}")
            store = os.path.join(folder, f"trivial-{name}-{i}.db")
            flow = Trivial(store=store, echo=False, **_options(name, client))
            per[name].append(_timed_run(flow, width=width) / width)
    if "dask" in names:
        floor = [dask_floor(client, width) for _ in range(args.repeat)]
        report.add(
            "Dask alone: submit + result of a trivial function",
            floor,
            "ms",
            scale=1000,
            note="16 at a time from threads; the floor under asyncflow's dask figure",
        )
    for name in names:
        report.add(
            f"{width}-wide foreach of trivial steps: {name}",
            per[name],
            "ms",
            scale=1000,
            baseline="threads" if name != "thread" else None,
            baseline_samples=per["thread"] if name != "thread" else [],
            note="wall time of the run / tasks",
        )


def dask_floor(client: Any, tasks: int) -> float:
    """Seconds per task of Dask alone: submit a trivial function and wait for its result,
    16 at a time from threads (as asyncflow does at max_workers=16)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int) -> int:
        return int(client.submit(_inc, i, pure=False).result())

    began = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(tasks)))
    return (time.perf_counter() - began) / tasks


def _inc(x: int) -> int:
    return x + 1


def _spin(loops: int) -> int:
    total = 0
    for i in range(loops):
        total += i * i % 7
    return total


def ceiling(loops: int) -> float:
    """What this machine allows right now: the same 8 tasks on a bare, already started pool of
    2 processes, as a speed-up over running them one after another here (the GIL's threads)."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(WORKERS) as pool:
        list(pool.map(_spin, [1000] * WORKERS))  # started before the timing
        began = time.perf_counter()
        list(pool.map(_spin, [loops] * 8))
        parallel = time.perf_counter() - began
    began = time.perf_counter()
    for _ in range(8):
        _spin(loops)
    return (time.perf_counter() - began) / parallel


def speedup_figures(report: Report, args: Any, folder: str, client: Any, names: list[str]) -> None:
    """An 8-wide foreach of 0.5 s pure-Python tasks: time per executor, ratio to threads."""
    loops = _loops_for(SPIN_SECONDS)
    per: dict[str, list[float]] = {n: [] for n in names}
    for i in range(args.repeat):
        for name in names:
            progress(f"speed-up {name} {i + 1}/{args.repeat}")
            store = os.path.join(folder, f"spin-{name}-{i}.db")
            flow = Spin(store=store, echo=False, **_options(name, client))
            per[name].append(_timed_run(flow, loops=loops))
    report.add(
        "  ceiling: a bare pool of 2 processes over 1 thread",
        [ceiling(loops) for _ in range(args.repeat)],
        "x",
        higher_is_better=True,
        note="the same work without asyncflow: what the machine allows at this load",
    )
    for name in names:
        if name == "thread":
            report.add("8 x 0.5 s CPU-bound foreach: threads", per[name], "s")
            continue
        speedups = [t / s for t, s in zip(per["thread"], per[name], strict=True)]
        report.add(f"8 x 0.5 s CPU-bound foreach: {name}", per[name], "s", note="time of the run")
        report.add(
            f"  speed-up of {name} over threads",
            speedups,
            "x",
            higher_is_better=True,
            note="threads' time / this executor's time, same repeat",
        )


def shipping_figures(report: Report, args: Any, folder: str, client: Any) -> None:
    """Bytes that reach Dask workers for 100 tasks reading one 100 MB parent array."""
    from asyncflow._codecs import encode

    width, mb = (20, 10) if args.quick else (100, 100)
    copies: list[float] = []
    shipped: list[float] = []
    for i in range(args.repeat):
        progress(f"shipping {i + 1}/{args.repeat}")
        before = _incoming(client)
        store = os.path.join(folder, f"fan-{i}.db")
        flow = Fan(store=store, echo=False, executor="dask", dask_client=client)
        run = anyio.run(lambda flow=flow: flow.run(width=width, mb=mb))  # type: ignore[misc]
        enc = encode(run["start"].task.data.arr)
        key, size = enc.sha.hex(), enc.size
        after = _incoming(client)
        fetched = [
            n
            for worker, entries in after.items()
            for k, n in entries[len(before.get(worker, [])) :]
            if key in k
        ]
        # Scattered once (to one worker), plus what other workers fetched from it.
        copies.append(1 + len(fetched))
        shipped.append((size + sum(fetched)) / 1e6)
        progress(f"  {len(fetched)} fetches of {size / 1e6:.0f} MB, {WORKERS} workers")
    report.add(
        f"{width} Dask tasks reading one {mb} MB array: copies shipped",
        copies,
        "",
        target=float(WORKERS),
        note=f"times the array reached a worker (scattered + fetched; {WORKERS} workers)",
    )
    report.add(
        f"{width} Dask tasks reading one {mb} MB array: MB shipped",
        shipped,
        "MB",
        note="bytes that reached the workers, by the workers' transfer logs",
    )


def _incoming(client: Any) -> dict[str, list[tuple[str, int]]]:
    def log(dask_worker: Any) -> list[tuple[str, int]]:
        return [
            (str(k), int(n))
            for entry in dask_worker.transfer_incoming_log
            for k, n in entry["keys"].items()
        ]

    out: dict[str, list[tuple[str, int]]] = client.run(log)
    return out


def _only(parser: Any) -> None:
    parser.add_argument(
        "--only",
        choices=["overhead", "speedup", "shipping"],
        action="append",
        help="measure only these (repeatable; default: all)",
    )


def main() -> None:
    args = parse_args(__doc__ or "", repeat=3, extra=_only)
    only = set(args.only or ["overhead", "speedup", "shipping"])
    report = Report("executors: per-task overhead, CPU speed-up, bytes shipped to Dask", args)
    client, cluster, started = _cluster()
    report.add("start a LocalCluster of 2 worker processes", [started], "s")
    try:
        with scratch_dir(args.dir, "af-exec-") as folder:
            names = ["thread", "process", "dask"]
            if "overhead" in only:
                overhead_figures(report, args, folder, client, names)
            if "speedup" in only:
                speedup_figures(report, args, folder, client, names)
            if "shipping" in only:
                shipping_figures(report, args, folder, client)
    finally:
        client.close()
        cluster.close()
    report.print()


if __name__ == "__main__":
    main()
