"""Crash safety: SIGKILL a process running a flow at random moments, then check the store.

    python benchmarks/stress_kill.py [--trials N] [--quick] [--tasks N] [--seed S] [--dir DIR]

Every trial starts ``KillFlow`` (a foreach of a few hundred tasks whose artifacts range from
a few bytes to chunked 1.2 MB arrays, plus pickled objects) in a child process on ONE store
file shared by all trials, and SIGKILLs it after a random delay. The delays are drawn from
a calibration run (on a scratch store) so that kills land in start-up (imports, opening or
creating the store), mid-run (tasks committing, the join reading every artifact) and at the
end (the last commits, the final WAL checkpoint, closing). Just before the kill the parent
reads which tasks are committed; after it, it checks:

* ``PRAGMA integrity_check`` is ``ok`` (else a *corruption*);
* every task committed before the kill (seen by that read), and every task of every earlier
  run, is still there with the same artifacts, and every artifact of the trial's runs
  decodes to exactly the value the flow computed (else a *lost commit*);
* the killed run reads back as ``crashed`` (or ``succeeded``, if it ended before the kill),
  from the client and from ``asyncflow runs`` (else *unrecognised*);
* ``await KillFlow(store=...).resume(run_id)`` of a crashed run succeeds with the right
  result (else a *failed resume*), when ``FlowSpec.resume`` exists.

At the end, every artifact of every run in the store is decoded once more. The exit code is
1 if any corruption, lost commit, unrecognised run or failed resume was seen.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import functools
import io
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from asyncflow import Flow, FlowSpec, Parameter, step
from asyncflow._cli import main as cli_main

FLOW = "KillFlow"
TASKS = 300
QUICK_TRIALS = 10


def work_values(seed: int, i: int) -> dict[str, Any]:
    """The artifacts the work task of index ``i`` sets (a pure function of seed and i)."""
    values: dict[str, Any] = {
        "small": i,
        "text": f"task {i} " * (i % 40),
        "counts": collections.Counter({"i": i, "seed": seed}),  # pickled (not msgpack)
    }
    if i % 150 == 0:  # 1.2 MB: chunked, new in every run
        values["arr"] = np.random.default_rng([seed, i]).random(150_000)
    elif i % 10 == 0:  # 16 KB, new in every run
        values["arr"] = np.random.default_rng([seed, i]).random(2_000)
    else:  # small, the same in every run (content addressing stores it once)
        values["arr"] = np.arange(i % 97, dtype=np.int32)
    return values


def start_values(n: int, seed: int) -> dict[str, Any]:
    return {"items": list(range(n)), "config": {"seed": seed, "pad": bytes(range(256)) * 200}}


@functools.lru_cache(maxsize=8)
def join_values(n: int, seed: int) -> dict[str, Any]:
    arrs = [work_values(seed, i)["arr"] for i in range(n)]
    return {"total": sum(range(n)), "arr_total": float(sum(float(a.sum()) for a in arrs))}


class KillFlow(FlowSpec):
    """start -> work (foreach, mixed artifact sizes) -> join (reads every array) -> end."""

    n = Parameter("n", default=TASKS)
    seed = Parameter("seed", default=0)

    @step
    def start(self):
        for name, value in start_values(self.n, self.seed).items():
            setattr(self, name, value)
        self.next(self.work, foreach="items")

    @step
    def work(self):
        for name, value in work_values(self.seed, self.input).items():
            setattr(self, name, value)
        time.sleep(0.01)  # a little work, so that kills land among the commits too
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(inp.small for inp in inputs)
        self.arr_total = float(sum(float(inp.arr.sum()) for inp in inputs))
        self.next(self.end)

    @step
    def end(self):
        pass


def expected(step_name: str, index: int | None, n: int, seed: int) -> dict[str, Any]:
    """The artifacts a task of ``step_name`` must hold (parameters and inherited included)."""
    base = {"n": n, "seed": seed}
    if step_name == "start":
        return {**base, **start_values(n, seed)}
    if step_name == "work":
        assert index is not None
        return {**base, **start_values(n, seed), **work_values(seed, index)}
    return {**base, **join_values(n, seed)}


def same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (type(a) is type(b) and a.dtype == b.dtype and a.shape == b.shape) and bool(
            np.array_equal(a, b)
        )
    return type(a) is type(b) and a == b


# --- the child ---------------------------------------------------------------------------------


def child(store: str, n: int, seed: int) -> None:
    asyncio.run(KillFlow(store=store, echo=False, max_workers=8).run(n=n, seed=seed))


# --- reading the store directly ----------------------------------------------------------------


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


def committed(path: str, after: int) -> dict[tuple[int, int], dict[str, bytes]]:
    """Tasks of runs with id > ``after``, with their artifact maps, in one snapshot."""
    if not os.path.exists(path):
        return {}
    try:
        conn = connect(path)
    except sqlite3.Error:
        return {}
    try:
        conn.execute("BEGIN")
        tasks = conn.execute("SELECT run_id, id FROM tasks WHERE run_id > ?", (after,))
        out: dict[tuple[int, int], dict[str, bytes]] = {(r, t): {} for r, t in tasks}
        for run_id, task_id, name, sha in conn.execute(
            "SELECT run_id, task_id, name, sha FROM artifacts WHERE run_id > ?", (after,)
        ):
            out.setdefault((run_id, task_id), {})[name] = bytes(sha)
        conn.execute("ROLLBACK")
        return out
    except sqlite3.Error:  # the store is still being created: nothing committed yet
        return {}
    finally:
        conn.close()


def scalar(path: str, sql: str, default: Any = None) -> Any:
    if not os.path.exists(path):
        return default
    conn = connect(path)
    try:
        row = conn.execute(sql).fetchone()
        return default if row is None or row[0] is None else row[0]
    except sqlite3.Error:
        return default
    finally:
        conn.close()


def integrity(path: str) -> str:
    if not os.path.exists(path):
        return "ok"
    conn = connect(path)
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
        return "; ".join(str(r[0]) for r in rows)
    finally:
        conn.close()


def dangling(path: str) -> int:
    """Artifact rows whose blob is missing, plus chunked blobs whose chunks do not add up."""
    if not _rows(path, "SELECT 1 FROM sqlite_master WHERE name = 'blob_chunks'"):
        return 0  # killed while the store was being created: no schema yet
    conn = connect(path)
    try:
        missing = conn.execute(
            "SELECT count(*) FROM artifacts AS a LEFT JOIN blobs AS b ON b.sha = a.sha "
            "WHERE b.sha IS NULL"
        ).fetchone()[0]
        short = conn.execute(
            "SELECT count(*) FROM blobs AS b WHERE b.nchunks > 0 AND (b.nchunks, b.size) != "
            "(SELECT count(*), coalesce(sum(length(c.data)), 0) FROM blob_chunks AS c "
            "WHERE c.sha = b.sha)"
        ).fetchone()[0]
        return int(missing) + int(short)
    finally:
        conn.close()


# --- checks through the client -----------------------------------------------------------------


def check_run(path: str, run_id: int, n: int, seed: int, *, complete: bool) -> tuple[str, int]:
    """(the run's status, how many of its artifacts are missing or wrong).

    :param complete: the run must have every task (a succeeded run).
    """
    bad = 0
    with Flow(FLOW, path) as flow:
        run = flow[run_id]
        tasks = 0
        for s in run:
            for task in s:
                if task.status not in ("succeeded", "caught"):
                    continue
                tasks += 1
                want = expected(s.name, task.index, n, seed)
                names = set(task.data)
                if names != set(want):
                    bad += len(names ^ set(want))
                for name in names & set(want):
                    try:
                        ok = same(task.data[name], want[name])
                    except Exception:
                        ok = False
                    bad += not ok
        if complete and tasks != n + 3:
            bad += abs(n + 3 - tasks)
        return run.status, bad


def cli_status(path: str, run_id: int) -> str:
    """The run's status as ``asyncflow runs`` prints it."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        cli_main(["runs", FLOW, "--store", path])
    for line in out.getvalue().splitlines()[1:]:
        cells = line.split()
        if len(cells) >= 3 and cells[1] == str(run_id):
            return cells[2]
    return "?"


def resume(path: str, run_id: int) -> int:
    """Resume ``run_id``; return the new run's id."""

    async def go() -> int:
        run = await KillFlow(store=path, echo=False).resume(str(run_id))
        return int(run.id)

    return asyncio.run(go())


# --- the trials --------------------------------------------------------------------------------


@dataclass
class Stats:
    trials: int = 0
    kills: int = 0
    finished_first: int = 0
    phases: collections.Counter[str] = field(default_factory=collections.Counter)
    corruptions: int = 0
    lost: int = 0
    unrecognised: int = 0
    resumes: int = 0
    failed_resumes: int = 0
    problems: list[str] = field(default_factory=list)


def spawn(store: str, n: int, seed: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--child", store, str(n), str(seed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def calibrate(folder: str, n: int) -> tuple[float, float, float]:
    """Seconds from spawn to: the run's creation, its end, the process's exit.

    Measured on a scratch store, on its second run (the first one also creates the file).
    """
    path = os.path.join(folder, "calibrate.db")
    for seed in (0, 1):
        spawned = time.time()
        spawn(path, n, seed).wait()
        exited = time.time()
    row = scalar(path, "SELECT created_at || ' ' || finished_at FROM runs ORDER BY id DESC")
    created, finished = row.split()
    return float(created) - spawned, float(finished) - spawned, exited - spawned


def pick_delay(
    rng: random.Random, t_created: float, t_finished: float, t_exit: float
) -> tuple[bool, float]:
    """(count from the run's creation rather than the spawn?, seconds to wait)."""
    roll = rng.random()
    if roll < 0.2:  # start-up: imports, opening or creating the store, the run row
        return False, rng.uniform(0.0, t_created * 1.1)
    run_time, exit_time = t_finished - t_created, t_exit - t_created
    if roll < 0.8:  # mid-run: tasks committing, the join reading
        return True, rng.uniform(0.0, run_time)
    # the end: last commits, the final checkpoint, closing the writer, exiting
    return True, rng.uniform(run_time - 0.1, exit_time + 0.05)


def wait_for_run(proc: subprocess.Popen[bytes], path: str, before: int) -> None:
    """Wait until the child's run row is committed (or the child has ended)."""
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        if int(scalar(path, "SELECT max(id) FROM runs", 0)) > before:
            return
        time.sleep(0.005)


def phase_of(seen: dict[tuple[int, int], dict[str, bytes]], status: str | None, n: int) -> str:
    if status is None:
        return "start-up"
    if status != "running":
        return "after the run ended"
    if not seen:
        return "run created, no task committed"
    if len(seen) < n + 2:
        return "mid-run"
    return "last commits / checkpoint"


def trial(
    number: int,
    path: str,
    n: int,
    rng: random.Random,
    timing: tuple[float, float, float],
    known: dict[tuple[int, int], dict[str, bytes]],
    stats: Stats,
    can_resume: bool,
) -> None:
    seed = number + 1
    before = int(scalar(path, "SELECT max(id) FROM runs", 0))
    from_run, delay = pick_delay(rng, *timing)
    proc = spawn(path, n, seed)
    if from_run:
        wait_for_run(proc, path, before)
    try:
        proc.wait(timeout=max(delay, 0.0))
        seen: dict[tuple[int, int], dict[str, bytes]] = {}
        killed = False
    except subprocess.TimeoutExpired:
        seen = committed(path, before)
        status_now = scalar(path, f"SELECT status FROM runs WHERE id > {before}")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed = True
        stats.kills += 1
        stats.phases[phase_of(seen, status_now, n)] += 1
    stats.trials += 1

    check = integrity(path)
    if check != "ok":
        stats.corruptions += 1
        stats.problems.append(f"trial {number}: integrity_check: {check[:200]}")
        return

    # Nothing committed earlier may be lost: earlier runs, and what was seen before the kill.
    now = committed(path, 0)
    for key, refs in [*known.items(), *seen.items()]:
        if now.get(key) != refs:
            stats.lost += 1
            stats.problems.append(f"trial {number}: task {key} lost or changed")
    broken = dangling(path)
    if broken:
        stats.lost += broken
        stats.problems.append(f"trial {number}: {broken} artifacts without their bytes")

    new_ids = [int(i) for (i,) in _rows(path, f"SELECT id FROM runs WHERE id > {before}")]
    if not killed and proc.returncode != 0:
        stats.problems.append(f"trial {number}: the child failed with exit code {proc.returncode}")
        stats.unrecognised += 1
    for run_id in new_ids:
        status, bad = check_run(path, run_id, n, seed, complete=False)
        stats.lost += bad
        if bad:
            stats.problems.append(f"trial {number}: run {run_id}: {bad} artifacts wrong")
        if status == "succeeded":
            stats.finished_first += killed
            status, bad = check_run(path, run_id, n, seed, complete=True)
            if bad:
                stats.lost += bad
                stats.problems.append(f"trial {number}: succeeded run {run_id} incomplete")
            continue
        shown = cli_status(path, run_id)
        if status != "crashed" or shown != "crashed":
            stats.unrecognised += 1
            stats.problems.append(
                f"trial {number}: killed run {run_id} reads as {status!r} (client), "
                f"{shown!r} (asyncflow runs)"
            )
            continue
        if not can_resume:
            continue
        stats.resumes += 1
        try:
            resumed = resume(path, run_id)
            status, bad = check_run(path, resumed, n, seed, complete=True)
        except Exception as exc:
            stats.failed_resumes += 1
            stats.problems.append(f"trial {number}: resume of run {run_id}: {exc!r}")
            continue
        if status != "succeeded" or bad:
            stats.failed_resumes += 1
            stats.problems.append(
                f"trial {number}: resume of {run_id}: status {status}, {bad} artifacts wrong"
            )
    known.update(committed(path, before))


def _rows(path: str, sql: str) -> list[tuple[Any, ...]]:
    if not os.path.exists(path):
        return []
    conn = connect(path)
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.Error:
        return []
    finally:
        conn.close()


def final_check(path: str, n: int) -> int:
    """Decode every artifact of every run once more; return how many are missing or wrong."""
    bad = 0
    if not os.path.exists(path) or not _rows(path, "SELECT 1 FROM runs LIMIT 1"):
        return 0
    with Flow(FLOW, path) as flow:
        runs = [(int(r.id), r.parameters["seed"]) for r in flow.runs()]
    for run_id, seed in runs:
        bad += check_run(path, run_id, n, seed, complete=False)[1]
    return bad


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--trials", type=int, default=None, help="kill trials (default 100)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_TRIALS} trials (CI)")
    parser.add_argument("--tasks", type=int, default=TASKS, help=f"foreach width ({TASKS})")
    parser.add_argument("--seed", type=int, default=None, help="seed of the kill delays")
    parser.add_argument("--dir", default=os.environ.get("BENCH_DIR"), help="scratch folder")
    args = parser.parse_args()
    trials = args.trials if args.trials is not None else QUICK_TRIALS if args.quick else 100
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    can_resume = hasattr(FlowSpec, "resume")
    folder = tempfile.mkdtemp(prefix="asyncflow-kill-", dir=args.dir)
    started = time.perf_counter()
    try:
        timing = calibrate(folder, args.tasks)
        path = os.path.join(folder, "store.db")
        print(
            f"stress_kill: {trials} trials of {FLOW} ({args.tasks} foreach tasks) on one "
            f"store; delay seed {seed}; spawn -> run created {timing[0]:.2f} s, -> run "
            f"finished {timing[1]:.2f} s, -> exit {timing[2]:.2f} s",
            flush=True,
        )
        stats = Stats()
        known: dict[tuple[int, int], dict[str, bytes]] = {}
        for number in range(trials):
            trial(number, path, args.tasks, rng, timing, known, stats, can_resume)
        final_bad = final_check(path, args.tasks)
        if final_bad:
            stats.lost += final_bad
            stats.problems.append(f"final check: {final_bad} artifacts missing or wrong")
        runs = int(scalar(path, "SELECT count(*) FROM runs", 0))
        size = os.path.getsize(path) if os.path.exists(path) else 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    wall = time.perf_counter() - started
    phases = ", ".join(f"{k}: {v}" for k, v in sorted(stats.phases.items()))
    print(f"trials            {stats.trials}")
    print(f"kills             {stats.kills}  ({phases})")
    print(f"finished first    {stats.finished_first} killed runs had already succeeded")
    print(f"corruptions       {stats.corruptions}")
    print(f"lost commits      {stats.lost}")
    print(f"unrecognised      {stats.unrecognised} killed runs not shown as crashed")
    if can_resume:
        print(f"resumes           {stats.resumes}")
        print(f"failed resumes    {stats.failed_resumes}")
    else:
        print("resumes           not checked: FlowSpec.resume does not exist yet")
    print(f"runs in the store {runs}, {size / 2**20:.1f} MiB; wall time {wall:.1f} s")
    for problem in stats.problems[:20]:
        print("  problem:", problem)
    failed = stats.corruptions + stats.lost + stats.unrecognised + stats.failed_resumes
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
