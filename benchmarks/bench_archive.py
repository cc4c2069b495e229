"""Export and import of a run holding one large artifact (1 GiB by default), against file copies.

    python benchmarks/bench_archive.py [--size-mb 1024] [--repeat N] [--quick]

One store holds one run whose start step set a float64 array of ``--size-mb``. Each repeat,
in the same process and on the same disk (the scratch folder), interleaved:

* export: ``run.export(path)`` to a new archive (SQLite copies rows and chunks file to
  file; the archive is fsynced and renamed into place);
* import: ``asyncflow.import_archive(path, fresh_store)``: every record and every value's
  sha256 is checked, then one transaction copies the run (into a new store, WAL);
* import again into the source store: the run is there already, so this is the check alone;
* baselines: ``shutil.copyfile`` of the source store file plus fsync (what moving the bytes
  costs at least), and sha256 over the artifact's bytes (what checking them costs at least);
* open + read: ``Flow(name, archive)[id].data.arr`` (each value read from an archive is
  checked against its sha) against the same read from the store.

Peak memory: a child process exports (and another imports) with the run's array never in
memory; ``ru_maxrss`` after minus before, over the artifact's size (target: well under 1x,
"never held twice").
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time

import numpy as np
from _common import Report, parse_args, progress, scratch_dir

import asyncflow
from asyncflow import FlowSpec, step


class ArchiveBench(FlowSpec):
    """One step that stores a large array."""

    @step
    def start(self) -> None:
        size = int(os.environ["BENCH_ARCHIVE_BYTES"]) // 8
        self.arr = np.random.default_rng(7).random(size)
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _child(op: str, src: str, dest: str) -> None:
    """Export or import in a fresh process and print the rise of its peak RSS."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if op == "export":
        run = asyncflow.Flow("ArchiveBench", src).latest_run
        assert run is not None
        run.export(dest)
    else:
        asyncflow.import_archive(src, dest)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"peak_rise": after - before}))


def _peak(op: str, src: str, dest: str) -> int:
    out = subprocess.run(
        [sys.executable, __file__, "--child", op, src, dest],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(__file__))},
    ).stdout
    return int(json.loads(out.strip().splitlines()[-1])["peak_rise"])


def main() -> None:
    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--size-mb", type=int, default=1024, help="artifact size (MiB)")

    args = parse_args(__doc__ or "", repeat=3, extra=extra)
    size = (16 if args.quick else args.size_mb) << 20
    os.environ["BENCH_ARCHIVE_BYTES"] = str(size)
    report = Report(f"archive export/import, one {size >> 20} MiB artifact", args)
    samples: dict[str, list[float]] = {
        k: [] for k in ("export", "import", "check", "copy", "sha", "read_a", "read_s")
    }
    with scratch_dir(args.dir, "bench-archive-") as tmp:
        store = os.path.join(tmp, "source.db")
        progress(f"writing the run ({size >> 20} MiB) ...")
        asyncio.run(ArchiveBench(store=store, echo=False).run())
        run = asyncflow.Flow("ArchiveBench", store).latest_run
        assert run is not None
        arr = run.data.arr
        for i in range(args.repeat):
            progress(f"repeat {i + 1}/{args.repeat}")
            archive = os.path.join(tmp, f"a{i}.afa")
            target = os.path.join(tmp, f"t{i}.db")
            copy = os.path.join(tmp, f"c{i}.db")

            start = time.perf_counter()
            shutil.copyfile(store, copy)
            _fsync(copy)
            samples["copy"].append(time.perf_counter() - start)
            os.unlink(copy)

            start = time.perf_counter()
            hashlib.sha256(memoryview(arr).cast("B")).digest()
            samples["sha"].append(time.perf_counter() - start)

            start = time.perf_counter()
            run.export(archive)
            samples["export"].append(time.perf_counter() - start)

            start = time.perf_counter()
            asyncflow.import_archive(archive, target)
            samples["import"].append(time.perf_counter() - start)

            start = time.perf_counter()
            asyncflow.import_archive(archive, store)
            samples["check"].append(time.perf_counter() - start)

            start = time.perf_counter()
            got = asyncflow.Flow("ArchiveBench", archive)[run.id].data.arr
            samples["read_a"].append(time.perf_counter() - start)
            assert got.nbytes == arr.nbytes
            del got
            start = time.perf_counter()
            got = asyncflow.Flow("ArchiveBench", store)[run.id].data.arr
            samples["read_s"].append(time.perf_counter() - start)
            del got

            for path in (archive, target, target + "-wal", target + "-shm"):
                if os.path.exists(path):
                    os.unlink(path)
        del arr
        archive = os.path.join(tmp, "peak.afa")
        progress("peak memory (child processes) ...")
        rise_export = _peak("export", store, archive)
        rise_import = _peak("import", archive, os.path.join(tmp, "peak.db"))

    mb = size / 1e6
    report.add("copy the store file + fsync (baseline)", samples["copy"], "s")
    report.add("export (run.export)", samples["export"], "s", baseline_samples=samples["copy"])
    report.add(
        "import into a new store",
        samples["import"],
        "s",
        baseline_samples=samples["copy"],
    )
    report.add("sha256 of the artifact bytes (baseline)", samples["sha"], "s")
    report.add(
        "import of a run already there (checks only)",
        samples["check"],
        "s",
        baseline_samples=samples["sha"],
    )
    report.add("read the artifact from the store", samples["read_s"], "s")
    report.add(
        "read the artifact from the archive (checked)",
        samples["read_a"],
        "s",
        baseline_samples=samples["read_s"],
    )
    report.add("export throughput", [mb / t for t in samples["export"]], "MB/s")
    report.add("import throughput", [mb / t for t in samples["import"]], "MB/s")
    report.add("peak RSS rise while exporting / artifact", [rise_export / size], "x")
    report.add("peak RSS rise while importing / artifact", [rise_import / size], "x")
    report.print()


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        main()
