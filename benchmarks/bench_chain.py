"""A 100-step linear chain of plain-``def`` steps, each reading and setting an artifact.

    python benchmarks/bench_chain.py [--repeat N] [--quick] [--async]

The flow's source is generated into a module file in a scratch folder (asyncflow reads the
graph from the source), then imported. Figures, per step (the run's wall time / steps):

* warm: back-to-back runs on a store file that exists and is open in this process;
* cold, first run: a new store file and the first run of the class in the process
  (builds the graph from the source, opens and creates the file);
* cold, new file: a new store file, graph already built;
* reopen: the file exists but the process closed it (the writer closes after 2 s idle);
* baselines in the same run: the same 100 calls in plain Python with no persistence, and
  one ``asyncio.to_thread`` round trip per step, serially (a chain cannot overlap; this is
  what the scheduler's draining threads avoid).

With ``--async`` the steps are ``async def`` instead, and the figures are the warm runs only,
per step, of the coroutine chain and of the plain chain, alternating run by run on two store
files of the same process; the baselines are the same 100 steps as plain coroutines awaited
one after the other, no framework, and the plain chain measured alongside.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import sys
import time
from types import ModuleType

from _common import Report, baselines_flag, parse_args, progress, scratch_dir, timed, touch_memory

TARGET_MS_PER_STEP = 0.15  # issue 15, plain and async def steps alike
IDLE_CLOSE_S = 2.0  # asyncflow's writer closes an unused store after this long


def chain_source(steps: int, coroutine: bool = False) -> str:
    """A flow ``ChainBench``: start, s1 .. s{steps-2}, end; each step does x += 1
    (``async def`` steps with ``coroutine``)."""
    names = ["start", *(f"s{i}" for i in range(1, steps - 1)), "end"]
    lines = [
        "from asyncflow import FlowSpec, step",
        "",
        "",
        "class ChainBench(FlowSpec):",
        "    @step",
        "    def start(self):",
        "        self.x = 0",
        f"        self.next(self.{names[1]})",
    ]
    for i, name in enumerate(names[1:-1], start=1):
        lines += [
            "",
            "    @step",
            f"    def {name}(self):",
            "        self.x = self.x + 1",
            f"        self.next(self.{names[i + 1]})",
        ]
    lines += ["", "    @step", "    def end(self):", "        self.x = self.x + 1", ""]
    text = "\n".join(lines)
    return text.replace("    def ", "    async def ") if coroutine else text


def plain_source(steps: int) -> str:
    """The same chain as plain methods calling each other in turn, no framework."""
    lines = ["class PlainChain:", "    def run(self):", "        self.x = 0"]
    lines += ["        self.s()" for _ in range(steps - 1)]
    lines += ["        return self.x", "", "    def s(self):", "        self.x = self.x + 1", ""]
    return "\n".join(lines)


def load_module(folder: str, name: str, source: str) -> ModuleType:
    path = os.path.join(folder, f"{name}.py")
    with open(path, "w", encoding="utf-8") as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _step(x: int) -> int:
    return x + 1


async def to_thread_chain(steps: int) -> int:
    x = 0
    for _ in range(steps):
        x = await asyncio.to_thread(_step, x)
    return x


class AwaitChain:
    """The coroutine baseline: 100 ``async def`` methods awaited in turn, no framework."""

    async def run(self, steps: int) -> int:
        self.x = 0
        for _ in range(steps - 1):
            await self.s()
        return self.x

    async def s(self) -> None:
        self.x = self.x + 1


def _flags(parser: argparse.ArgumentParser) -> None:
    baselines_flag(parser)
    parser.add_argument(
        "--async",
        dest="coroutine",
        action="store_true",
        help="async def steps: their warm runs against the plain chain's and plain awaits",
    )


async def main() -> None:
    args = parse_args(__doc__.splitlines()[0], repeat=5, extra=_flags)
    if args.coroutine:
        await main_async(args)
        return
    steps = 100
    warm_runs = 2 if args.quick else 10
    report = Report(f"bench_chain: a {steps}-step linear chain of plain-def steps", args)
    touch_memory()
    with scratch_dir(args.dir, "bench_chain-") as folder:
        flow_cls = load_module(folder, "chain_bench_flow", chain_source(steps)).ChainBench
        plain_cls = load_module(folder, "chain_bench_plain", plain_source(steps)).PlainChain

        cpu: list[float] = []

        async def run(path: str) -> float:
            start, cpu_start = time.perf_counter(), time.process_time()
            result = await flow_cls(store=path, echo=False).run()
            wall = time.perf_counter() - start
            cpu.append((time.process_time() - cpu_start) / steps)
            assert result.data.x == steps - 1, "wrong result"
            return wall / steps

        # `import asyncflow` no longer imports the runtime (issue 15): import what a run
        # imports first, so that "cold, first run" stays the run's own one-time work.
        importlib.import_module("asyncflow._runtime._run")
        importlib.import_module("asyncflow._client")
        first = await run(os.path.join(folder, "first.db"))
        warm: list[float] = []
        cold: list[float] = []
        reopen: list[float] = []
        warm_cpu: list[float] = []
        for r in range(args.repeat):
            path = os.path.join(folder, f"store{r}.db")
            cold.append(await run(path))
            for _ in range(warm_runs):
                warm.append(await run(path))
                warm_cpu.append(cpu[-1])
            if not args.quick and args.baselines:
                await asyncio.sleep(IDLE_CLOSE_S + 1.0)
                reopen.append(await run(path))
            progress(f"  repeat {r + 1}/{args.repeat}: warm {min(warm[-warm_runs:]) * 1e3:.3f}")

        plain = [timed(lambda: plain_cls().run())[0] / steps for _ in range(max(20, warm_runs))]
        threads: list[float] = []
        for _ in range(args.repeat * 3 if args.baselines else 0):
            start = time.perf_counter()
            assert await to_thread_chain(steps) == steps
            threads.append((time.perf_counter() - start) / steps)

    report.add(
        "chain: asyncflow warm, per step",
        warm,
        "ms",
        scale=1e3,
        baseline="plain Python calls, no persistence",
        baseline_samples=plain,
        target=TARGET_MS_PER_STEP,
        note=f"{warm_runs} runs x {args.repeat} repeats; run wall time / {steps} steps",
    )
    report.add(
        "chain: asyncflow warm, CPU of all threads, per step",
        warm_cpu,
        "ms",
        scale=1e3,
        note="process CPU time / steps: steadier than wall time on a busy machine",
    )
    report.add(
        "chain: asyncflow cold, first run in process",
        [first],
        "ms",
        scale=1e3,
        baseline="asyncflow warm",
        baseline_samples=warm,
        note="builds the graph from source, creates the store file",
    )
    report.add(
        "chain: asyncflow cold, new store file",
        cold,
        "ms",
        scale=1e3,
        baseline="asyncflow warm",
        baseline_samples=warm,
    )
    if reopen:
        report.add(
            "chain: asyncflow reopen (existing file, closed)",
            reopen,
            "ms",
            scale=1e3,
            baseline="asyncflow warm",
            baseline_samples=warm,
        )
    report.add("chain: plain Python calls", plain, "ms", scale=1e3)
    report.add(
        "chain: asyncio.to_thread per step, serial",
        threads,
        "ms",
        scale=1e3,
        baseline="asyncflow warm",
        baseline_samples=warm,
    )
    report.print()


async def main_async(args: argparse.Namespace) -> None:
    steps = 100
    warm_runs = 2 if args.quick else 10
    report = Report(f"bench_chain --async: a {steps}-step chain of async def steps", args)
    touch_memory()
    with scratch_dir(args.dir, "bench_chain-") as folder:
        classes = {
            kind: load_module(
                folder, f"chain_bench_{kind}", chain_source(steps, kind == "async")
            ).ChainBench
            for kind in ("async", "plain")
        }

        cpu: dict[str, list[float]] = {"async": [], "plain": []}  # the first: the cold run

        async def run(kind: str) -> float:
            start, cpu_start = time.perf_counter(), time.process_time()
            result = await classes[kind](store=os.path.join(folder, f"{kind}.db"), echo=False).run()
            wall = time.perf_counter() - start
            cpu[kind].append((time.process_time() - cpu_start) / steps)
            assert result.data.x == steps - 1, "wrong result"
            return wall / steps

        for kind in classes:  # builds the graph, creates the store file
            await run(kind)
        samples: dict[str, list[float]] = {"async": [], "plain": []}
        for r in range(args.repeat):
            for _ in range(warm_runs):
                for kind in classes:
                    samples[kind].append(await run(kind))
            best = min(samples["async"][-warm_runs:]) * 1e3
            progress(f"  repeat {r + 1}/{args.repeat}: async warm {best:.3f}")
        awaits: list[float] = []
        for _ in range(max(20, warm_runs) if args.baselines else 0):
            start = time.perf_counter()
            assert await AwaitChain().run(steps) == steps - 1
            awaits.append((time.perf_counter() - start) / steps)

    report.add(
        "chain: asyncflow warm, async def steps, per step",
        samples["async"],
        "ms",
        scale=1e3,
        baseline="the plain-def chain, alternating runs",
        baseline_samples=samples["plain"],
        target=TARGET_MS_PER_STEP,
        note=f"{warm_runs} runs x {args.repeat} repeats; run wall time / {steps} steps",
    )
    report.add(
        "chain: asyncflow warm, plain def steps, per step",
        samples["plain"],
        "ms",
        scale=1e3,
        target=TARGET_MS_PER_STEP,
    )
    report.add(
        "chain: CPU of all threads, async def, per step",
        cpu["async"][1:],
        "ms",
        scale=1e3,
        baseline="the same for the plain-def chain",
        baseline_samples=cpu["plain"][1:],
        note="process CPU time / steps: steadier than wall time on a busy machine",
    )
    report.add(
        "chain: CPU of all threads, plain def, per step",
        cpu["plain"][1:],
        "ms",
        scale=1e3,
    )
    report.add(
        "chain: plain awaits of async def methods",
        awaits,
        "ms",
        scale=1e3,
        note="the coroutine floor: what a step costs with no framework",
    )
    report.print()


if __name__ == "__main__":
    asyncio.run(main())
