"""What ``PRAGMA auto_vacuum = INCREMENTAL`` costs the writes of new stores.

    python benchmarks/bench_auto_vacuum.py [--repeat N] [--quick]

New store files are created with ``auto_vacuum = INCREMENTAL`` (``_store._db.AUTO_VACUUM``)
so that ``asyncflow gc`` can give freed pages back to the file system. That mode keeps
pointer-map pages up to date on every page allocation. This script measures, in the same
process and interleaved (the order alternates from repeat to repeat), with the mode set to
``NONE`` and to ``INCREMENTAL``:

* the save of a 100 MB float64 array (bench_large's figure: a run that sets it minus the
  same run without it, on a new store file);
* bench_chain's warm figure: a 100-step chain of plain steps, wall time per step, over
  several back-to-back runs on one new store file;
* the same writes at the SQLite level, without the runtime (less noise): the 100 MB value
  inserted as chunk rows by the store's own ``insert_blob`` in one transaction plus the
  end-of-run checkpoint, and 300 small transactions of 5 inline values each.

It also reports, for each mode, the file size after ``gc`` deleted the array's run.
"""

from __future__ import annotations

import asyncio
import os
import resource
import statistics
import time

import numpy as np
from _common import Report, parse_args, progress, scratch_dir, touch_memory
from bench_chain import chain_source, load_module
from bench_large import af_run, remove_db, touch

import asyncflow
import asyncflow._store._db as db
from asyncflow._codecs import encode
from asyncflow._store._blobs import insert_blob

MODES = ("NONE", "INCREMENTAL")
IDLE_CLOSE_S = 2.5  # asyncflow's writer closes an unused store after 2 s


def cpu_seconds() -> float:
    """CPU time of this process so far (less sensitive than wall time to a busy machine)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def large_save(path: str, arr: np.ndarray) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of the save: a run with ``arr`` minus one without."""
    await af_run(path, None)  # create the file, open the store
    cpu0 = cpu_seconds()
    with_arr, _ = await af_run(path, arr)
    cpu1 = cpu_seconds()
    without, _ = await af_run(path, None)
    cpu2 = cpu_seconds()
    return with_arr - without, (cpu1 - cpu0) - (cpu2 - cpu1)


def size_after_gc(path: str) -> int:
    # Keep the last run (the one without the array); the array's run goes.
    asyncflow.gc(path, keep_last=1)
    return os.path.getsize(path)


def sqlite_writes(path: str, arr: np.ndarray, tag: int) -> tuple[float, float]:
    """(seconds to store ``arr`` and checkpoint, seconds for 300 small transactions)."""
    conn = db.open_writer(path)
    try:
        enc = encode(arr)
        start = time.perf_counter()
        db.write_transaction(conn, lambda: insert_blob(conn, enc))
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        big = time.perf_counter() - start
        start = time.perf_counter()
        for i in range(300):
            encs = [encode(f"{tag}-{i}-{j}-" + "x" * 200) for j in range(5)]
            db.write_transaction(conn, lambda encs=encs: [insert_blob(conn, e) for e in encs])
        small = time.perf_counter() - start
    finally:
        conn.close()
    return big, small


async def chain_warm(flow_cls: type, path: str, runs: int, steps: int) -> list[float]:
    out: list[float] = []
    await flow_cls(store=path, echo=False).run()  # creates the file
    for _ in range(runs):
        start = time.perf_counter()
        await flow_cls(store=path, echo=False).run()
        out.append((time.perf_counter() - start) / steps)
    return out


async def main() -> None:
    args = parse_args(__doc__.splitlines()[0], repeat=5)
    elements = 1_000_000 if args.quick else 12_500_000  # 8 MB or 100 MB
    steps, warm_runs = 100, 2 if args.quick else 8
    report = Report("bench_auto_vacuum: write cost of auto_vacuum=INCREMENTAL vs NONE", args)
    base = np.random.default_rng(0).random(elements)
    touch(base.nbytes * 3)
    touch_memory()
    save: dict[str, list[float]] = {m: [] for m in MODES}
    save_cpu: dict[str, list[float]] = {m: [] for m in MODES}
    chain: dict[str, list[float]] = {m: [] for m in MODES}
    shrunk: dict[str, list[float]] = {m: [] for m in MODES}
    raw_big: dict[str, list[float]] = {m: [] for m in MODES}
    raw_small: dict[str, list[float]] = {m: [] for m in MODES}
    saved_mode = db.AUTO_VACUUM
    try:
        with scratch_dir(args.dir, "bench_auto_vacuum-") as folder:
            flow_cls = load_module(folder, "av_chain_flow", chain_source(steps)).ChainBench
            for r in range(args.repeat):
                order = MODES if r % 2 == 0 else MODES[::-1]
                for mode in order:
                    db.AUTO_VACUUM = mode
                    path = os.path.join(folder, f"large-{mode}-{r}.db")
                    arr = base.copy()
                    arr[0] = r
                    touch(base.nbytes * 2)
                    wall, cpu = await large_save(path, arr)
                    save[mode].append(wall)
                    save_cpu[mode].append(cpu)
                    shrunk[mode].append(size_after_gc(path) / 1e6)
                    # Let the store close and its writes settle before the other mode runs.
                    await asyncio.sleep(IDLE_CLOSE_S)
                    remove_db(path)
                    path = os.path.join(folder, f"chain-{mode}-{r}.db")
                    chain[mode] += await chain_warm(flow_cls, path, warm_runs, steps)
                    await asyncio.sleep(IDLE_CLOSE_S)
                    remove_db(path)
                    path = os.path.join(folder, f"raw-{mode}-{r}.db")
                    big, small = sqlite_writes(path, arr, r)
                    raw_big[mode].append(big)
                    raw_small[mode].append(small)
                    remove_db(path)
                progress(
                    f"  repeat {r + 1}/{args.repeat}: save "
                    + ", ".join(f"{m} {save[m][-1] * 1e3:.0f} ms" for m in MODES)
                )
    finally:
        db.AUTO_VACUUM = saved_mode
    mb = base.nbytes / 1e6
    for mode in MODES:
        report.add(
            f"save {mb:.0f} MB array, auto_vacuum={mode}",
            save[mode],
            "ms",
            scale=1e3,
            baseline=None if mode == "NONE" else "auto_vacuum=NONE",
            baseline_samples=[] if mode == "NONE" else save["NONE"],
            note=f"{mb / statistics.median(save[mode]):.0f} MB/s",
        )
    for mode in MODES:
        report.add(
            f"chain warm per step, auto_vacuum={mode}",
            chain[mode],
            "ms",
            scale=1e3,
            baseline=None if mode == "NONE" else "auto_vacuum=NONE",
            baseline_samples=[] if mode == "NONE" else chain["NONE"],
        )
    report.add(
        "save: INCREMENTAL / NONE, paired per repeat",
        [i / n for i, n in zip(save["INCREMENTAL"], save["NONE"], strict=True)],
        "x",
        note="each repeat measures both modes back to back (order alternating)",
    )
    report.add(
        "save CPU time: INCREMENTAL / NONE, paired",
        [i / n for i, n in zip(save_cpu["INCREMENTAL"], save_cpu["NONE"], strict=True)],
        "x",
        note="process CPU time of the save (run with the array minus run without)",
    )
    per_repeat = [
        statistics.median(chain["INCREMENTAL"][r * warm_runs : (r + 1) * warm_runs])
        / statistics.median(chain["NONE"][r * warm_runs : (r + 1) * warm_runs])
        for r in range(args.repeat)
    ]
    report.add("chain: INCREMENTAL / NONE, paired per repeat", per_repeat, "x")
    for name, samples in (("value + checkpoint", raw_big), ("300 small txns", raw_small)):
        for mode in MODES:
            report.add(f"sqlite level: {name}, {mode}", samples[mode], "ms", scale=1e3)
        report.add(
            f"sqlite level: {name}: INCREMENTAL / NONE, paired",
            [i / n for i, n in zip(samples["INCREMENTAL"], samples["NONE"], strict=True)],
            "x",
        )
    for mode in MODES:
        report.add(
            f"file after gc of the array's run, {mode}",
            shrunk[mode],
            "MB",
            note="NONE: gc runs VACUUM; INCREMENTAL: gc runs incremental_vacuum",
        )
    report.print()


if __name__ == "__main__":
    asyncio.run(main())
