"""Only warm asyncflow runs of the foreach or the chain benchmark: a target for profilers.

    py-spy record -r 1000 --threads -f raw -o /tmp/fe.raw -- \\
        python benchmarks/profile_runs.py foreach --n 10000 --runs 5
    python benchmarks/pyspy_top.py /tmp/fe.raw --skip-imports

    python benchmarks/profile_runs.py chain --runs 50 --pyinstrument   # the event loop's view

One untimed run first creates the store (and, for the chain, builds the graph); the runs
after it are the ones profiled. Each run's wall time is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time

import bench_chain
import bench_foreach


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", choices=["foreach", "chain"])
    parser.add_argument("--n", type=int, default=10000, help="foreach width (default 10000)")
    parser.add_argument("--steps", type=int, default=100, help="chain length (default 100)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--async", dest="coroutine", action="store_true", help="chain: async def steps"
    )
    parser.add_argument("--max-workers", type=int, default=16)
    parser.add_argument(
        "--pyinstrument", action="store_true", help="profile the event loop with pyinstrument"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="profile_runs-") as folder:
        path = os.path.join(folder, "store.db")
        if args.which == "foreach":
            units = args.n

            async def once() -> None:
                flow = bench_foreach.ForeachBench(
                    store=path, echo=False, max_workers=args.max_workers
                )
                await flow.run(n=args.n)
        else:
            units = args.steps
            source = bench_chain.chain_source(args.steps, args.coroutine)
            cls = bench_chain.load_module(folder, "profile_chain_flow", source).ChainBench

            async def once() -> None:
                await cls(store=path, echo=False, max_workers=args.max_workers).run()

        await once()
        profiler = None
        if args.pyinstrument:
            from pyinstrument import Profiler

            profiler = Profiler(async_mode="enabled")
            profiler.start()
        for _ in range(args.runs):
            start = time.perf_counter()
            await once()
            elapsed = time.perf_counter() - start
            print(f"{elapsed * 1e3:8.1f} ms  {elapsed / units * 1e3:.4f} ms per task")
        if profiler is not None:
            profiler.stop()
            print(profiler.output_text(show_all=False))


if __name__ == "__main__":
    asyncio.run(main())
