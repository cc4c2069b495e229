"""Many processes, one store: several processes run flows on the same file at the same time.

    python benchmarks/stress_processes.py [--processes P] [--runs R] [--tasks N] [--quick]

P processes (default 4) each run R runs (default 25) of ``ProcFlow``, a foreach of N tasks
(default 100) with artifacts from a few bytes to 200 KB, one after the other, all on ONE
store file. Meanwhile this process reads the same file: long read transactions held for
about a second (which must not hold up any writer), and the client, sync and async, reading
the newest runs while they are written. Afterwards every run each process reported is read
back: it must have succeeded, have every task, and every artifact must decode to the value
the flow computed.

Printed: processes, runs, tasks, errors (any exception in a process or a reader, "database
is locked" included, and any process exiting non-zero: must be 0), lost commits (tasks or
artifacts missing or wrong: must be 0), wall time. Exit code 1 if either count is not 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import numpy as np

from asyncflow import Flow, FlowSpec, Parameter, step

FLOW = "ProcFlow"


def work_values(proc: int, number: int, i: int) -> dict[str, Any]:
    """The artifacts the work task of index ``i`` of run ``number`` of ``proc`` sets."""
    rng = np.random.default_rng([proc, number, i])
    return {
        "small": i,
        "label": f"p{proc}-r{number}-t{i}",
        "vec": rng.random(25_000 if i % 25 == 0 else 100),  # 200 KB or 800 B
        "shared": np.arange(i % 50, dtype=np.int64),  # the same in every run: stored once
    }


class ProcFlow(FlowSpec):
    """start -> work (foreach) -> join (reads every vector) -> end."""

    proc = Parameter("proc", default=0)
    number = Parameter("number", default=0)
    width = Parameter("width", default=100)

    @step
    def start(self):
        self.items = list(range(self.width))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        for name, value in work_values(self.proc, self.number, self.input).items():
            setattr(self, name, value)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(inp.small for inp in inputs)
        self.vec_total = float(sum(float(inp.vec.sum()) for inp in inputs))
        self.next(self.end)

    @step
    def end(self):
        pass


def expected(
    step_name: str, index: int | None, proc: int, number: int, width: int
) -> dict[str, Any]:
    base = {"proc": proc, "number": number, "width": width}
    if step_name == "start":
        return {**base, "items": list(range(width))}
    if step_name == "work":
        assert index is not None
        return {**base, "items": list(range(width)), **work_values(proc, number, index)}
    vecs = [work_values(proc, number, i)["vec"] for i in range(width)]
    return {
        **base,
        "total": sum(range(width)),
        "vec_total": float(sum(float(v.sum()) for v in vecs)),
    }


def same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (type(a) is type(b) and a.dtype == b.dtype and a.shape == b.shape) and bool(
            np.array_equal(a, b)
        )
    return type(a) is type(b) and a == b


# --- a child process ---------------------------------------------------------------------------


def child(store: str, proc: int, runs: int, width: int) -> None:
    async def go() -> None:
        for number in range(runs):
            try:
                run = await ProcFlow(store=store, echo=False).run(
                    proc=proc, number=number, width=width
                )
                line: dict[str, Any] = {"run": int(run.id), "number": number}
            except Exception as exc:
                line = {"error": f"process {proc}, run {number}: {exc!r}"}
            print(json.dumps(line), flush=True)

    asyncio.run(go())


# --- readers in this process, while the children write -------------------------------------------


class Readers:
    """Long read transactions and client reads on the store until stopped."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.long_reads = 0
        self.client_reads = 0
        self.threads = [
            threading.Thread(target=self._guard, args=(self._long_reads,)),
            threading.Thread(target=self._guard, args=(self._client_reads,)),
            threading.Thread(target=self._guard, args=(lambda: asyncio.run(self._async()),)),
        ]

    def __enter__(self) -> Readers:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()

    def _guard(self, fn: Any) -> None:
        try:
            fn()
        except Exception as exc:
            self.errors.append(f"reader: {exc!r}")

    def _ready(self) -> bool:
        # The first child creates the store; wait for its first run.
        while not self.stop.is_set():
            if os.path.exists(self.path):
                try:
                    with Flow(FLOW, self.path):
                        return True
                except Exception:
                    pass
            time.sleep(0.05)
        return False

    def _long_reads(self) -> None:
        if not self._ready():
            return
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=5)
        try:
            while not self.stop.is_set():
                conn.execute("BEGIN")
                conn.execute("SELECT count(*), sum(length(data)) FROM blobs").fetchone()
                self.stop.wait(1.0)  # hold the snapshot: writers must go on regardless
                conn.execute("SELECT count(*) FROM artifacts").fetchone()
                conn.execute("ROLLBACK")
                self.long_reads += 1
        finally:
            conn.close()

    def _client_reads(self) -> None:
        if not self._ready():
            return
        while not self.stop.is_set():
            with Flow(FLOW, self.path) as flow:
                for run in flow.runs(limit=3):
                    for s in run:
                        for task in s:
                            for name in task.data:
                                _ = task.data[name]  # decoding is the point
                    self.client_reads += 1

    async def _async(self) -> None:
        if not await asyncio.to_thread(self._ready):
            return
        while not self.stop.is_set():
            async with Flow.aopen(FLOW, self.path) as flow:
                for run in await flow.aruns(limit=2):
                    for s in await run.asteps():
                        for task in s:
                            for name in await task.anames():
                                await task.adata(name)
                    self.client_reads += 1
            await asyncio.sleep(0.05)


# --- checking ----------------------------------------------------------------------------------


def check_run(flow: Flow, run_id: int, proc: int, number: int, width: int) -> tuple[int, int]:
    """(tasks read, artifacts or tasks missing or wrong) for one reported run."""
    run = flow[run_id]
    params = run.parameters
    bad = 0 if (run.status, params) == ("succeeded", {**params, "proc": proc}) else 1
    tasks = 0
    for s in run:
        for task in s:
            tasks += 1
            want = expected(s.name, task.index, proc, number, width)
            names = set(task.data)
            bad += len(names ^ set(want))
            bad += sum(not same(task.data[name], want[name]) for name in names & set(want))
    bad += abs(width + 3 - tasks)
    return tasks, bad


def main() -> int:
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--processes", type=int, default=None, help="processes (default 4)")
    parser.add_argument("--runs", type=int, default=None, help="runs per process (default 25)")
    parser.add_argument("--tasks", type=int, default=100, help="foreach width (default 100)")
    parser.add_argument("--quick", action="store_true", help="2 processes x 5 runs (CI)")
    parser.add_argument("--dir", default=os.environ.get("BENCH_DIR"), help="scratch folder")
    args = parser.parse_args()
    procs = args.processes or (2 if args.quick else 4)
    runs = args.runs or (5 if args.quick else 25)
    folder = tempfile.mkdtemp(prefix="asyncflow-procs-", dir=args.dir)
    path = os.path.join(folder, "store.db")
    errors: list[str] = []
    reported: list[tuple[int, int, int]] = []  # (run id, process, run number)

    def command(k: int) -> list[str]:
        return [str(k), str(runs), str(args.tasks)]

    started = time.perf_counter()
    try:
        with Readers(path) as readers:
            children = [
                subprocess.Popen(
                    [sys.executable, os.path.abspath(__file__), "--child", path, *command(k)],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for k in range(procs)
            ]
            for k, proc in enumerate(children):
                out, err = proc.communicate()
                for line in out.splitlines():
                    item = json.loads(line)
                    if "error" in item:
                        errors.append(item["error"])
                    else:
                        reported.append((item["run"], k, item["number"]))
                if proc.returncode != 0:
                    errors.append(f"process {k} exited with {proc.returncode}: {err[-500:]}")
        wall = time.perf_counter() - started
        errors += readers.errors
        lost = tasks = 0
        with Flow(FLOW, path) as flow:
            for run_id, k, number in reported:
                got, bad = check_run(flow, run_id, k, number, args.tasks)
                tasks += got
                lost += bad
            stored = len(flow.runs())
        conn = sqlite3.connect(path)
        check = conn.execute("PRAGMA integrity_check").fetchone()[0]
        conn.close()
        if check != "ok":
            errors.append(f"integrity_check: {check}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"stress_processes: {procs} processes x {runs} runs of {FLOW} ({args.tasks} tasks)")
    print(f"processes     {procs}")
    print(f"runs          {len(reported)} reported, {stored} stored")
    print(f"tasks         {tasks} read back, every artifact decoded and compared")
    print(
        f"reads         {readers.long_reads} long read transactions (1 s each), "
        f"{readers.client_reads} runs read by the client meanwhile"
    )
    print(f"errors        {len(errors)}")
    print(f"lost commits  {lost}")
    print(f"wall time     {wall:.1f} s")
    for error in errors[:20]:
        print("  error:", error)
    return 1 if errors or lost else 0


if __name__ == "__main__":
    sys.exit(main())
