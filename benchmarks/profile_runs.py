"""Only warm asyncflow runs of the foreach or the chain benchmark: a target for profilers.

    py-spy record -r 1000 --threads -f raw -o /tmp/fe.raw -- \\
        python benchmarks/profile_runs.py foreach --n 10000 --runs 5
    python benchmarks/pyspy_top.py /tmp/fe.raw --skip-imports

    python benchmarks/profile_runs.py chain --runs 50 --pyinstrument   # the event loop's view
    python benchmarks/profile_runs.py chain --runs 30 --checkpoint   # the last checkpoint's share

One untimed run first creates the store (and, for the chain, builds the graph); the runs
after it are the ones profiled. Each run's wall time is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
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
    parser.add_argument(
        "--checkpoint",
        action="store_true",
        help="time the store's end-of-run WAL checkpoint and print its share of each run",
    )
    args = parser.parse_args()
    spent = _time_checkpoints() if args.checkpoint else []
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
        walls: list[float] = []
        shares: list[float] = []
        for _ in range(args.runs):
            spent.clear()
            start = time.perf_counter()
            await once()
            elapsed = time.perf_counter() - start
            walls.append(elapsed)
            line = f"{elapsed * 1e3:8.1f} ms  {elapsed / units * 1e3:.4f} ms per task"
            if args.checkpoint:
                line += f"  checkpoint {sum(spent) * 1e3:.2f} ms ({sum(spent) / elapsed:.0%})"
                shares.append(sum(spent))
            print(line)
        if shares:
            mid, wall = statistics.median(shares), statistics.median(walls)
            print(
                f"median: run {wall * 1e3:.2f} ms, checkpoint {mid * 1e3:.2f} ms "
                f"({min(shares) * 1e3:.2f}-{max(shares) * 1e3:.2f}), {mid / wall:.0%} of the run"
            )
        if profiler is not None:
            profiler.stop()
            print(profiler.output_text(show_all=False))


def _time_checkpoints() -> list[float]:
    """Wrap the writer's checkpoint to record how long each one takes (seconds)."""
    from asyncflow._store import _writer

    spent: list[float] = []
    checkpoint = _writer.Writer._checkpoint

    def timed(self: _writer.Writer) -> bool:
        start = time.perf_counter()
        try:
            return checkpoint(self)
        finally:
            spent.append(time.perf_counter() - start)

    _writer.Writer._checkpoint = timed  # type: ignore[method-assign]
    return spent


if __name__ == "__main__":
    asyncio.run(main())
