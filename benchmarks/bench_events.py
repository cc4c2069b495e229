"""What a run's events cost, and how soon a reader sees them.

    python benchmarks/bench_events.py [--repeat N] [--pairs N] [--same] [--quick]

Figures:

* per task, 1,000-wide foreach of trivial plain tasks (``bench_foreach.ForeachBench``), warm
  store: with events (as every run records them) and, in the same process, alternating run
  by run, without the per-task events (``RunContext.events`` left unset, as the runtime did
  before events: RunStarted and RunFinished only). The ratio is the events' price; the
  target is at most 1.10. Each run starts after a ``gc.collect()`` (not timed), so that no
  run pays for collecting the garbage of the one before. ``--same``: both sides of each
  pair with events (two stores), to show what the noise alone gives.
* store bytes per task: the file's growth from one more 1,000-wide run / 1,000, with and
  without events (target: at most 512 B with them).
* latency, in process: from a task's TaskFinished being published (its ``at``) to a
  ``flow.stream()`` reader holding it; median over the tasks of several runs (target 5 ms).
* latency, another process: a child process runs the flow; this one follows the store with
  ``run.aevents(follow=True)``; median over the TaskFinished events of several runs (target
  250 ms). Both processes read the same clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sqlite3
import subprocess
import sys
import time

from _common import Report, parse_args, progress, scratch_dir, touch_memory
from bench_foreach import ForeachBench

import asyncflow._runtime._run as run_module
from asyncflow import Flow, events

HERE = os.path.dirname(os.path.abspath(__file__))
FLOWS = os.path.join(os.path.dirname(HERE), "tests", "flows", "event_flows.py")
TARGET_RATIO = 1.10
TARGET_BYTES = 512
TARGET_LOCAL_MS = 5.0
TARGET_REMOTE_MS = 250.0

_RunContext = run_module.RunContext


def _without_task_events(*args: object, **kw: object) -> object:
    kw["events"] = None  # the run's hub still records RunStarted and RunFinished
    return _RunContext(*args, **kw)  # type: ignore[arg-type]


async def timed_run(path: str, n: int, with_events: bool) -> tuple[float, float]:
    """(wall, CPU seconds of all threads) of one run."""
    run_module.RunContext = _RunContext if with_events else _without_task_events  # type: ignore[assignment,misc]
    gc.collect()
    try:
        cpu = time.process_time()
        start = time.perf_counter()
        run = await ForeachBench(store=path, echo=False).run(n=n)
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu
    finally:
        run_module.RunContext = _RunContext  # type: ignore[misc]
    assert run.data.total == n * (n - 1)
    return wall, cpu


def events_bytes(path: str) -> tuple[int, int]:
    """(bytes of the events table's pages, bytes of its rows' data), from SQLite's dbstat."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        pages = conn.execute("SELECT sum(pgsize) FROM dbstat WHERE name = 'events'").fetchone()
        data = conn.execute("SELECT sum(length(data)) FROM events").fetchone()
    return int(pages[0] or 0), int(data[0] or 0)


async def per_task(args, report: Report, n: int) -> None:
    # Side True: with events; side False: without (with events too under --same).
    def events_on(side: bool) -> bool:
        return side or args.same

    walls: dict[bool, list[float]] = {True: [], False: []}
    cpus: dict[bool, list[float]] = {True: [], False: []}
    sizes: dict[bool, list[float]] = {True: [], False: []}
    pair_cpu: list[float] = []
    pair_wall: list[float] = []
    with scratch_dir(args.dir, "bench_events-") as folder:
        paths = {mode: os.path.join(folder, f"{mode}.db") for mode in (True, False)}
        for mode in (True, False):  # cold runs first: both stores warm
            await timed_run(paths[mode], n, events_on(mode))
        for r in range(args.pairs or args.repeat * 2):
            for mode in (True, False) if r % 2 == 0 else (False, True):
                before = os.path.getsize(paths[mode])
                wall, cpu = await timed_run(paths[mode], n, events_on(mode))
                walls[mode].append(wall / n)
                cpus[mode].append(cpu / n)
                sizes[mode].append((os.path.getsize(paths[mode]) - before) / n)
            pair_cpu.append(cpus[True][-1] / cpus[False][-1])
            pair_wall.append(walls[True][-1] / walls[False][-1])
            progress(
                f"  pair {r + 1}: with {walls[True][-1] * 1e3:.3f} ms, "
                f"without {walls[False][-1] * 1e3:.3f} ms per task"
            )
        runs = len(walls[True]) + 1
        pages, data = events_bytes(paths[True])
    report.add(
        f"foreach n={n}: per task, with events",
        walls[True],
        "ms",
        scale=1e3,
        baseline="the same, without per-task events (same process, alternating)",
        baseline_samples=walls[False],
        note=f"target: ratio <= {TARGET_RATIO}",
    )
    report.add(f"foreach n={n}: per task, without events", walls[False], "ms", scale=1e3)
    report.add(
        f"foreach n={n}: CPU per task (all threads), with events",
        cpus[True],
        "ms",
        scale=1e3,
        baseline="the same, without per-task events",
        baseline_samples=cpus[False],
    )
    report.add(f"foreach n={n}: CPU per task, without events", cpus[False], "ms", scale=1e3)
    report.add(
        f"foreach n={n}: with/without, pair by pair, CPU",
        pair_cpu,
        "x",
        target=TARGET_RATIO,
        note="each pair: one run with events and one without, back to back",
    )
    report.add(f"foreach n={n}: with/without, pair by pair, wall", pair_wall, "x")
    report.add(
        f"foreach n={n}: events table bytes/task",
        [pages / (runs * n)],
        "B",
        note=f"its pages (dbstat) / tasks of the {runs} runs; its rows' data alone: "
        f"{data / (runs * n):.0f} B/task",
    )
    report.add(
        f"foreach n={n}: store bytes/task, with events",
        sizes[True],
        "B",
        target=TARGET_BYTES,
        baseline="without events",
        baseline_samples=sizes[False],
        note="file growth from one more run / n (WAL checkpointed at the run's end)",
    )
    report.add(f"foreach n={n}: store bytes/task, without events", sizes[False], "B")


async def local_latency(args, report: Report) -> None:
    from tests.flows.event_flows import SlowFlow

    lags: list[float] = []
    with scratch_dir(args.dir, "bench_events-lat-") as folder:
        path = os.path.join(folder, "s.db")
        for _ in range(args.repeat):
            async with SlowFlow(store=path, echo=False, max_workers=2).stream(
                n=20, pause=0.01
            ) as stream:
                async for ev in stream:
                    if isinstance(ev, events.TaskFinished):
                        lags.append(time.time() - ev.at.timestamp())
    report.add(
        "latency: TaskFinished -> in-process reader",
        lags,
        "ms",
        scale=1e3,
        target=TARGET_LOCAL_MS,
        note=f"flow.stream() over SlowFlow(n=20, pause=0.01): {len(lags)} tasks",
    )


async def remote_latency(args, report: Report) -> None:
    lags: list[float] = []
    with scratch_dir(args.dir, "bench_events-follow-") as folder:
        for r in range(args.repeat):
            path = os.path.join(folder, f"s{r}.db")
            proc = subprocess.Popen(
                [sys.executable, FLOWS, "run", "--quiet", "--store", path, "--n", "10",
                 "--pause", "0.05"],
                stdout=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                while True:
                    try:
                        runs = Flow("SlowFlow", store=path).runs() if os.path.exists(path) else []
                    except Exception:
                        runs = []
                    if runs:
                        break
                    await asyncio.sleep(0.01)
                async for ev in runs[0].aevents(follow=True):
                    if isinstance(ev, events.TaskFinished):
                        lags.append(time.time() - ev.at.timestamp())
                proc.wait(60)
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
    report.add(
        "latency: TaskFinished -> another process following",
        lags,
        "ms",
        scale=1e3,
        target=TARGET_REMOTE_MS,
        note="run.aevents(follow=True) while a child process runs SlowFlow(n=10, pause=0.05)",
    )


def _pairs_flag(parser) -> None:
    parser.add_argument(
        "--pairs", type=int, default=0, help="runs with and without events (default 2 x repeat)"
    )
    parser.add_argument(
        "--same",
        action="store_true",
        help="an A/B of the same mode: both runs of each pair with events (the noise)",
    )


async def main() -> None:
    args = parse_args(__doc__.splitlines()[0], repeat=5, extra=_pairs_flag)
    sys.path.insert(0, os.path.dirname(HERE))  # tests.flows
    title = "the price of a run's events, and their latency"
    if args.same:
        title = "A/B of the same mode (events on both sides of each pair: the noise)"
    report = Report(f"bench_events: {title}", args)
    touch_memory()
    await per_task(args, report, 200 if args.quick else 1000)
    if not args.same:
        await local_latency(args, report)
        await remote_latency(args, report)
    report.print()


if __name__ == "__main__":
    asyncio.run(main())
