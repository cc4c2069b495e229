"""Attribute reads inside a running step: ``self.input``, ``self.index``, an artifact.

    python benchmarks/bench_reads.py [--repeat N] [--quick] [--reads N]

One run of ``ReadsBench`` (a foreach of one element, ``max_workers=1`` so that nothing else
runs beside the timed loops): the foreach task, a plain ``def`` step, then the coroutine step
after it, each time loops of ``--reads`` reads (default 200,000, the issue's loop) of:

* ``self.input`` (a dict: the task's own copy, made on the first read) and ``self.index``;
* ``self.earlier``: an artifact set by an earlier step (loaded and decoded on the first
  read), and ``self.here``: one set in this step;
* the baseline, in the same step, interleaved with the others: the same loop reading an
  attribute of an ordinary Python object.

Each figure is a loop's CPU time (of the step's thread) / reads, the ``for`` loop's own cost
included, as in the baseline: one sample per loop and ``--repeat`` loops per read, the loops
of each kind alternating; the ratio is to the plain read. CPU time, not wall time: on a busy
machine a loop's wall time also counts the time other processes had the core (the wall
figures, printed as notes, match the CPU ones on a quiet machine).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from typing import Any

from _common import Report, parse_args, progress, scratch_dir, touch_memory

from asyncflow import FlowSpec, Parameter, step

TARGET_US_PER_READ = 0.2
KINDS = ("plain", "input", "index", "earlier", "here")

# Filled by the steps (same process): "<step>/<kind>" -> seconds per read, wall and CPU.
WALL: dict[str, list[float]] = {}
CPU: dict[str, list[float]] = {}


class _Plain:
    """The baseline's ordinary object."""

    def __init__(self) -> None:
        self.value = 1


def _time_reads(flow: Any, where: str, reads: int, rounds: int) -> None:
    # The loops are written out, one per kind: a loop through getattr would time getattr.
    obj = _Plain()
    span = range(reads)
    for _ in range(rounds):
        for kind in KINDS:
            wall, cpu = time.perf_counter(), time.thread_time()
            if kind == "plain":
                for _ in span:
                    obj.value  # noqa: B018
            elif kind == "input":
                for _ in span:
                    flow.input  # noqa: B018
            elif kind == "index":
                for _ in span:
                    flow.index  # noqa: B018
            elif kind == "earlier":
                for _ in span:
                    flow.earlier  # noqa: B018
            else:
                for _ in span:
                    flow.here  # noqa: B018
            wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
            WALL.setdefault(f"{where}/{kind}", []).append(wall / reads)
            CPU.setdefault(f"{where}/{kind}", []).append(cpu / reads)


class ReadsBench(FlowSpec):
    """start -> body (foreach over one dict) -> coro -> join -> end."""

    reads = Parameter("reads", default=200_000)
    rounds = Parameter("rounds", default=5)

    @step
    def start(self):
        self.items = [{"k": [1, 2, 3]}]
        self.earlier = [1, 2, 3]
        self.next(self.body, foreach="items")

    @step
    def body(self):
        self.here = {"set": "in this step"}
        assert self.input == {"k": [1, 2, 3]} and self.index == 0
        _time_reads(self, "plain step", self.reads, self.rounds)
        self.next(self.coro)

    @step
    async def coro(self):
        self.here = {"set": "in this step"}
        assert self.input == {"k": [1, 2, 3]} and self.index == 0
        _time_reads(self, "async step", self.reads, self.rounds)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


def _flags(parser: Any) -> None:
    parser.add_argument("--reads", type=int, default=200_000, help="reads per loop")


async def main() -> None:
    args = parse_args(__doc__.splitlines()[0], repeat=5, extra=_flags)
    reads = 20_000 if args.quick else args.reads
    report = Report(f"bench_reads: attribute reads in a step, loops of {reads:,}", args)
    touch_memory()
    with scratch_dir(args.dir, "bench_reads-") as folder:
        path = os.path.join(folder, "reads.db")
        flow = ReadsBench(store=path, echo=False, max_workers=1)
        await flow.run(reads=reads, rounds=args.repeat)
        progress(f"  {args.repeat} rounds of {reads:,} reads per kind, two steps")
    labels = {
        "input": "self.input",
        "index": "self.index",
        "earlier": "self.<artifact set by an earlier step>",
        "here": "self.<artifact set in this step>",
    }
    for where in ("plain step", "async step"):
        base = CPU[f"{where}/plain"]
        for kind, label in labels.items():
            key = f"{where}/{kind}"
            wall = statistics.median(WALL[key]) * 1e6
            report.add(
                f"{where}: {label}",
                CPU[key],
                "us",
                scale=1e6,
                baseline="a plain attribute read of an ordinary object, same step",
                baseline_samples=base,
                target=TARGET_US_PER_READ,
                note=f"CPU time per read; wall time {wall:.4f} us per read (median)",
            )
        wall = statistics.median(WALL[f"{where}/plain"]) * 1e6
        report.add(
            f"{where}: plain object attribute (baseline)",
            base,
            "us",
            scale=1e6,
            note=f"CPU time per read; wall time {wall:.4f} us per read (median)",
        )
    report.print()


if __name__ == "__main__":
    asyncio.run(main())
