"""Save and load of a 1 GiB float64 array through an artifact: time and peak memory.

    python benchmarks/bench_gib.py [--repeat N] [--quick] [--mb MB]

Each measurement runs in a child process of its own, so its peak RSS (``VmHWM``) is that
run's alone; the parent alternates the two kinds of child, repeat after repeat:

* asyncflow: ``await GibBench(store=path).run()``, whose start step sets ``self.arr`` (a new
  random array, made before the clock starts), is the save (the whole run: hashing, writing
  the chunks, the commit at ``synchronous = NORMAL`` in WAL mode and the end-of-run
  truncating checkpoint that puts every byte into the main file and fsyncs it). Then the
  array is dropped and ``Flow("GibBench", path)[run_id].data.arr`` on a fresh client is the
  load (page cache warm: the file was just written).
* baseline, numpy: ``np.save`` to a file + ``fsync``, the array dropped, ``np.load``.

Both check that the loaded array's bytes have the sha256 of the saved ones (not timed). The
peak is the child's ``VmHWM`` over the array's size: the array itself counts 1.0, and the
interpreter with numpy and asyncflow imported about 0.05 of a GiB.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time

import numpy as np
from _common import Report, parse_args, progress, scratch_dir

import asyncflow
from asyncflow import FlowSpec, step

TARGET_TOTAL_S = 3.0  # save + load of 1 GiB
TARGET_PEAK = 1.3  # peak RSS over the array's size

ARRAY: np.ndarray | None = None  # what GibBench's start step stores (None: nothing)


class GibBench(FlowSpec):
    """start sets ``arr`` (the module's ARRAY), end does nothing."""

    @step
    def start(self):
        if ARRAY is not None:
            self.arr = ARRAY
        self.next(self.end)

    @step
    def end(self):
        pass


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(field)


def _sha(arr: np.ndarray) -> str:
    return hashlib.sha256(memoryview(arr).cast("B")).hexdigest()


def _array(nbytes: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random(nbytes // 8)


async def child_asyncflow(nbytes: int, seed: int, folder: str) -> dict[str, float]:
    global ARRAY
    path = os.path.join(folder, "gib.db")
    await GibBench(store=path, echo=False).run()  # create the store, start its threads
    base_rss = _status("VmRSS")
    ARRAY = _array(nbytes, seed)
    sha = _sha(ARRAY)
    start = time.perf_counter()
    run = await GibBench(store=path, echo=False).run()
    save = time.perf_counter() - start
    save_peak = _status("VmHWM")
    ARRAY = None
    run_id = run.id
    del run
    gc.collect()
    size = os.path.getsize(path)
    with asyncflow.Flow("GibBench", path) as flow:  # a fresh client: nothing cached
        handle = flow[run_id]
        start = time.perf_counter()
        arr = handle.data.arr
        load = time.perf_counter() - start
    ok = arr.nbytes == nbytes and _sha(arr) == sha
    return {
        "save": save,
        "load": load,
        "peak": _status("VmHWM") / nbytes,
        "save_peak": save_peak / nbytes,
        "base": base_rss / nbytes,
        "ok": float(ok),
        "file": size / nbytes,
    }


def child_numpy(nbytes: int, seed: int, folder: str) -> dict[str, float]:
    path = os.path.join(folder, "gib.npy")
    base_rss = _status("VmRSS")
    arr = _array(nbytes, seed)
    sha = _sha(arr)
    start = time.perf_counter()
    with open(path, "wb") as f:
        np.save(f, arr)
        f.flush()
        os.fsync(f.fileno())
    save = time.perf_counter() - start
    del arr
    gc.collect()
    start = time.perf_counter()
    arr = np.load(path)
    load = time.perf_counter() - start
    ok = arr.nbytes == nbytes and _sha(arr) == sha
    return {
        "save": save,
        "load": load,
        "peak": _status("VmHWM") / nbytes,
        "base": base_rss / nbytes,
        "ok": float(ok),
    }


def child_sqlite(nbytes: int, seed: int, folder: str) -> dict[str, float]:
    # The floor under asyncflow's save: the same bytes as 1 MiB chunk rows, plain sqlite3 in
    # WAL mode with asyncflow's page size and durability (synchronous = NORMAL, a truncating
    # checkpoint, the main file fsynced), timed apart from the sha256 asyncflow needs first.
    path = os.path.join(folder, "plain.db")
    arr = _array(nbytes, seed)
    start = time.perf_counter()
    _sha(arr)
    sha = time.perf_counter() - start
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA page_size = 65536")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE chunks (sha BLOB, idx INTEGER, data BLOB, PRIMARY KEY (sha, idx))")
    view = memoryview(arr).cast("B")
    chunk = 1 << 20
    start = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT INTO chunks VALUES (?, ?, ?)",
        ((b"k" * 32, i, view[i : i + chunk]) for i in range(0, nbytes, chunk)),
    )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    write = time.perf_counter() - start
    conn.close()
    return {
        "save": write,
        "sha": sha,
        "load": 0.0,
        "peak": _status("VmHWM") / nbytes,
        "base": 0.0,
        "ok": 1.0,
    }


def measure(kind: str, nbytes: int, seed: int, folder: str) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            kind,
            "--bytes",
            str(nbytes),
            "--seed",
            str(seed),
            "--dir",
            folder,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    if not result["ok"]:
        raise AssertionError(f"{kind}: the loaded array's sha256 differs from the saved one")
    return result


def _extra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mb", type=int, default=1024, help="array size in MiB (default 1024)")
    parser.add_argument("--child", choices=("asyncflow", "numpy", "sqlite"), help=argparse.SUPPRESS)
    parser.add_argument("--bytes", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], repeat=3, extra=_extra)
    if args.child:
        if args.child == "numpy":
            result = child_numpy(args.bytes, args.seed, args.dir)
        elif args.child == "sqlite":
            result = child_sqlite(args.bytes, args.seed, args.dir)
        else:
            result = asyncio.run(child_asyncflow(args.bytes, args.seed, args.dir))
        print(json.dumps(result))
        return
    nbytes = (64 if args.quick else args.mb) << 20
    report = Report(f"bench_gib: save + load of a {nbytes >> 20} MiB float64 array", args)
    af: list[dict[str, float]] = []
    npy: list[dict[str, float]] = []
    raw: list[dict[str, float]] = []
    for r in range(args.repeat):
        # Rotate which goes first, so none always meets another's dirty pages.
        kinds = ("asyncflow", "numpy", "sqlite")
        for kind in kinds[r % 3 :] + kinds[: r % 3]:
            with scratch_dir(args.dir, "bench_gib-") as folder:
                got = measure(kind, nbytes, r, folder)
            {"asyncflow": af, "numpy": npy, "sqlite": raw}[kind].append(got)
            progress(
                f"  repeat {r + 1}/{args.repeat} {kind}: save {got['save']:.2f} s, load "
                f"{got['load']:.2f} s, peak {got['peak']:.2f}x"
            )

    def col(rows: list[dict[str, float]], key: str) -> list[float]:
        return [row[key] for row in rows]

    def total(rows: list[dict[str, float]]) -> list[float]:
        return [row["save"] + row["load"] for row in rows]

    target = None if args.quick else TARGET_TOTAL_S  # the target is for 1 GiB
    report.add(
        "save + load: asyncflow",
        total(af),
        "s",
        baseline="np.save + fsync + np.load",
        baseline_samples=total(npy),
        target=target,
    )
    report.add(
        "  save: asyncflow run (hash, write, commit, checkpoint)",
        col(af, "save"),
        "s",
        baseline="np.save + fsync",
        baseline_samples=col(npy, "save"),
    )
    report.add(
        "  load: asyncflow run.data.arr (warm cache)",
        col(af, "load"),
        "s",
        baseline="np.load",
        baseline_samples=col(npy, "load"),
    )
    report.add(
        "  save vs the floor: plain sqlite3 WAL + sha256",
        [(w["save"] + w["sha"]) / a["save"] for w, a in zip(raw, af, strict=True)],
        "x",
        note="per repeat: (sqlite3 write + sha256) / asyncflow save; same page, chunk, durability",
    )
    report.add(
        "  plain sqlite3 WAL write (floor)",
        col(raw, "save"),
        "s",
        note="64 KiB pages, 1 MiB chunk rows, NORMAL, TRUNCATE checkpoint, fsync",
    )
    report.add("  sha256 of the array (hashlib)", col(raw, "sha"), "s")
    report.add("np.save + fsync + np.load (baseline)", total(npy), "s")
    report.add("  np.save + fsync", col(npy, "save"), "s")
    report.add("  np.load", col(npy, "load"), "s")
    report.add(
        "peak RSS / array: asyncflow",
        col(af, "peak"),
        "x",
        baseline="numpy",
        baseline_samples=col(npy, "peak"),
        target=TARGET_PEAK,
        note="the child's VmHWM over the array's bytes; the array itself is 1.0",
    )
    report.add("  of which during the save: asyncflow", col(af, "save_peak"), "x")
    report.add("peak RSS / array: numpy (baseline)", col(npy, "peak"), "x")
    report.add("  RSS before the array / array: asyncflow", col(af, "base"), "x")
    report.add("store file after the run / array", col(af, "file"), "x")
    report.print()
    if args.json:
        report.write_json(args.json)


if __name__ == "__main__":
    main()
