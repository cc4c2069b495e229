"""A foreach of N trivial plain-``def`` tasks, fully persisted, through the public API.

    python benchmarks/bench_foreach.py [--repeat N] [--quick]

Figures per N (1,000 and 10,000; --quick: 200 and 1,000):

* asyncflow, warm: ``await ForeachBench(store=path).run(n=N)`` on a store file that exists
  and is open in this process (the usual case: a second run). Wall and CPU time per task,
  amortised over the whole run (start, N tasks, the join that reads every output, end).
* asyncflow, cold: the first run on a new store file (opens the file, creates the schema).
* baselines, same process, same run: the same loop in plain Python with no persistence
  (the ratio shows the price of a persisted task); one ``asyncio.to_thread`` per task,
  sequentially (the latency a chain of plain steps would pay without draining) and
  16 at a time with ``asyncio.gather`` (what a foreach would pay without draining).
* store bytes per task: the file's size after the first run (WAL checkpointed) / tasks,
  and the marginal growth from one more run / its tasks (events included: every task's
  TaskStarted and TaskFinished are in the store).
* 100,000 wide (not with --quick): wall time of a warm run, and its RAM per task: the
  process's peak RSS during the run (``VmHWM``, reset just before it through
  ``/proc/self/clear_refs``) minus its RSS before the run, / tasks.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import time

from _common import Report, baselines_flag, parse_args, progress, scratch_dir, timed, touch_memory

from asyncflow import FlowSpec, Parameter, step

TARGET_MS_PER_TASK = 0.08
TARGET_BYTES_PER_TASK = 512
WIDE = 100_000
TARGET_WIDE_SECONDS = 5.0
TARGET_WIDE_RAM_PER_TASK = 1024


class ForeachBench(FlowSpec):
    """start -> work (foreach over range(n)) -> join -> end."""

    n = Parameter("n", default=1000)

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.out = self.input * 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.out for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


class _Task:
    """What a task is in the plain-Python baseline: an object with attributes."""


def plain_loop(n: int) -> int:
    """The same work with no framework and no persistence."""
    start = _Task()
    start.items = list(range(n))
    outs = []
    for x in start.items:
        task = _Task()
        task.input = x
        task.out = task.input * 2
        outs.append(task)
    return sum(t.out for t in outs)


def _work(x: int) -> int:
    return x * 2


async def to_thread_sequential(n: int) -> int:
    """One thread round trip per task, one after the other."""
    total = 0
    for x in range(n):
        total += await asyncio.to_thread(_work, x)
    return total


async def to_thread_gather(n: int, width: int = 16) -> int:
    """One thread round trip per task, ``width`` at a time."""
    sem = asyncio.Semaphore(width)

    async def one(x: int) -> int:
        async with sem:
            return await asyncio.to_thread(_work, x)

    return sum(await asyncio.gather(*(one(x) for x in range(n))))


async def timed_run(path: str, n: int) -> tuple[float, float]:
    """Wall and CPU seconds of one persisted run; checks its result."""
    cpu = time.process_time()
    start = time.perf_counter()
    run = await ForeachBench(store=path, echo=False).run(n=n)
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu
    assert run.data.total == n * (n - 1), "wrong result"
    return wall, cpu


async def measure(args, report: Report, n: int) -> None:
    repeat = args.repeat
    warm_wall: list[float] = []
    warm_cpu: list[float] = []
    cold_wall: list[float] = []
    size_first: list[float] = []
    size_marginal: list[float] = []
    for r in range(repeat):
        with scratch_dir(args.dir, "bench_foreach-") as folder:
            path = os.path.join(folder, "store.db")
            wall, _ = await timed_run(path, n)
            cold_wall.append(wall / n)
            first = os.path.getsize(path)
            size_first.append(first / n)
            for i in range(2):
                wall, cpu = await timed_run(path, n)
                warm_wall.append(wall / n)
                warm_cpu.append(cpu / n)
                if i == 0:
                    size_marginal.append((os.path.getsize(path) - first) / n)
            # The end-of-run checkpoint copied the WAL into the main file: its size is the store.
        progress(f"  n={n} repeat {r + 1}/{repeat}: warm {warm_wall[-1] * 1e3:.3f} ms/task")

    plain = [timed(lambda: plain_loop(n))[0] / n for _ in range(max(5, repeat))]
    seq: list[float] = []
    gather: list[float] = []
    for _ in range(repeat if args.baselines else 0):
        start = time.perf_counter()
        assert await to_thread_sequential(n) == n * (n - 1)
        seq.append((time.perf_counter() - start) / n)
        start = time.perf_counter()
        assert await to_thread_gather(n) == n * (n - 1)
        gather.append((time.perf_counter() - start) / n)

    label = f"foreach n={n}"
    report.add(
        f"{label}: asyncflow warm, wall",
        warm_wall,
        "ms",
        scale=1e3,
        baseline="plain Python loop, no persistence",
        baseline_samples=plain,
        target=TARGET_MS_PER_TASK,
        note="per task, amortised over start + n tasks + join + end",
    )
    report.add(
        f"{label}: asyncflow warm, CPU (all threads)",
        warm_cpu,
        "ms",
        scale=1e3,
        baseline="asyncflow warm, wall",
        baseline_samples=warm_wall,
    )
    report.add(
        f"{label}: asyncflow cold (new store file)",
        cold_wall,
        "ms",
        scale=1e3,
        baseline="asyncflow warm, wall",
        baseline_samples=warm_wall,
    )
    report.add(f"{label}: plain Python loop", plain, "ms", scale=1e3)
    report.add(
        f"{label}: asyncio.to_thread per task, serial",
        seq,
        "ms",
        scale=1e3,
        baseline="asyncflow warm, wall",
        baseline_samples=warm_wall,
    )
    report.add(
        f"{label}: asyncio.to_thread per task, 16 wide",
        gather,
        "ms",
        scale=1e3,
        baseline="asyncflow warm, wall",
        baseline_samples=warm_wall,
    )
    report.add(
        f"{label}: store bytes/task, first run",
        size_first,
        "B",
        note="file size after the run (WAL checkpointed) / n; includes the empty schema",
    )
    report.add(
        f"{label}: store bytes/task, marginal",
        size_marginal,
        "B",
        target=TARGET_BYTES_PER_TASK,
        note="file growth from one more run / n",
    )


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


async def wide_once(folder: str, n: int) -> dict[str, float]:
    """In a fresh process (``--wide-child``): one warm run of ``n`` tasks, its wall time and
    peak RSS rise (VmHWM reset to VmRSS just before the run) per task."""
    path = os.path.join(folder, "store.db")
    await ForeachBench(store=path, echo=False).run(n=100)
    gc.collect()
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")  # VmHWM := VmRSS
    before = _status_kib("VmRSS")
    wall, cpu = await timed_run(path, n)
    return {"wall": wall, "cpu": cpu, "ram": (_status_kib("VmHWM") - before) / n}


async def measure_wide(args, report: Report) -> None:
    """A 100,000-wide foreach, each repeat in a fresh process: wall time, RAM per task."""
    n = WIDE
    walls: list[float] = []
    cpus: list[float] = []
    ram: list[float] = []
    for r in range(args.repeat):
        with scratch_dir(args.dir, "bench_foreach-wide-") as folder:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--wide-child", folder, str(n),
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, _ = await proc.communicate()
            assert proc.returncode == 0, "the wide run failed"
            got = json.loads(out.decode().strip().splitlines()[-1])
        walls.append(got["wall"])
        cpus.append(got["cpu"])
        ram.append(got["ram"])
        progress(f"  n={n} repeat {r + 1}/{args.repeat}: {walls[-1]:.2f} s, {ram[-1]:.0f} B/task")
    plain = [timed(lambda: plain_loop(n))[0] for _ in range(max(3, args.repeat))]
    report.add(
        f"foreach n={n}: asyncflow warm, wall (fresh process)",
        walls,
        "s",
        baseline="plain Python loop, no persistence",
        baseline_samples=plain,
        target=TARGET_WIDE_SECONDS,
    )
    report.add(
        f"foreach n={n}: asyncflow warm, CPU (all threads)",
        cpus,
        "s",
        baseline="asyncflow warm, wall",
        baseline_samples=walls,
    )
    report.add(
        f"foreach n={n}: peak RSS rise per task",
        ram,
        "B",
        target=TARGET_WIDE_RAM_PER_TASK,
        note="fresh process after a 100-task run: VmHWM during the run - VmRSS before, / n",
    )


async def main() -> None:
    args = parse_args(__doc__.splitlines()[0], repeat=5, extra=baselines_flag)
    sizes = (200, 1000) if args.quick else (1000, 10000)
    report = Report("bench_foreach: foreach of trivial plain-def tasks", args)
    touch_memory()
    with scratch_dir(args.dir, "bench_foreach-warmup-") as folder:
        await ForeachBench(store=os.path.join(folder, "s.db"), echo=False).run(n=100)
    for n in sizes:
        await measure(args, report, n)
    if not args.quick and os.path.exists("/proc/self/clear_refs"):
        await measure_wide(args, report)
    report.print()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--wide-child":
        print(json.dumps(asyncio.run(wide_once(sys.argv[2], int(sys.argv[3])))))
    else:
        asyncio.run(main())
