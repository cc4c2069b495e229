"""The archive fuzz run: worker processes, a timeout per case, and the summary.

Each worker is a long-lived ``python -m tests._fuzzarchive`` process that takes cases (a number
and a seed, one line each) on its stdin and answers one JSON line per case. A worker that
crashes, or gives no answer within the timeout, is killed and replaced, and its case counts
as OTHER: so a crash or a hang in asyncflow is a finding, never the end of the run. The
outcomes are defined in ``tests/_fuzzarchive.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import random
import selectors
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tests._fuzzarchive import OPS, REPO, Fixture, Verdict, build, case_kind
from tests._fuzzstore import store_case_kind

# Every operation a case may report: an archive case's three, a store case's one.
ALL_OPS = (*OPS, "store")
OUTCOMES = ("same", "clear", "accepted", "unchecked", "OTHER")

__all__ = ["Summary", "case_seeds", "main", "run_cases", "run_fuzz"]


# --- the pool of workers --------------------------------------------------------------------


class _Proc:
    """One worker process and the bytes it has written but we have not parsed yet."""

    def __init__(self, fixture: Fixture, folder: str, log: str) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        self.log = log
        with open(log, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests._fuzzarchive", fixture.to_json(), folder],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                cwd=folder,
                env=env,
            )
        self.buf = b""

    def send(self, number: int, seed: int, where: str = "archive") -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{number} {seed}{' store' if where == 'store' else ''}\n".encode())
        self.proc.stdin.flush()

    def line(self, deadline: float) -> bytes | None:
        """The next line, or None at the deadline (b"" if the process ended)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self.buf:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    return None
                chunk = os.read(fd, 65536)
                if not chunk:
                    return b""
                self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()

    def tail(self) -> str:
        with open(self.log, errors="replace") as fh:
            return fh.read()[-1500:]


def _start(fixture: Fixture, folder: str, log: str, timeout: float) -> _Proc:
    proc = _Proc(fixture, folder, log)
    first = proc.line(time.monotonic() + max(120.0, timeout))
    if not first or "ready" not in json.loads(first):
        proc.kill()
        raise RuntimeError(f"a fuzz worker did not start: {first!r}\n{proc.tail()}")
    return proc


def _failed_case(number: int, seed: int, why: str, where: str = "archive") -> dict[str, Any]:
    kind, _ = store_case_kind(seed) if where == "store" else case_kind(seed)
    verdict = dataclasses.asdict(Verdict("OTHER", detail=why))
    return {
        "case": number,
        "seed": seed,
        "kind": kind,
        "what": why,
        "ops": {op: verdict for op in (("store",) if where == "store" else OPS)},
    }


def run_cases(
    fixture: Fixture,
    cases: list[tuple[int, int]] | list[tuple[int, int, str]],
    *,
    workers: int,
    timeout: float,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run ``(number, seed)`` archive cases, or ``(number, seed, "archive" | "store")``
    cases, on a pool of worker processes; one result each."""
    todo = [(c[0], c[1], c[2] if len(c) > 2 else "archive") for c in reversed(cases)]
    lock = threading.Lock()
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def serve(slot: int) -> None:
        folder = os.path.join(fixture.folder, f"worker-{slot}")
        log = os.path.join(fixture.folder, f"worker-{slot}.log")
        os.makedirs(folder, exist_ok=True)
        proc: _Proc | None = None
        try:
            proc = _start(fixture, folder, log, timeout)
            while True:
                with lock:
                    if not todo or errors:
                        return
                    number, seed, where = todo.pop()
                proc.send(number, seed, where)
                line = proc.line(time.monotonic() + timeout)
                if line:
                    result = json.loads(line)
                else:
                    why = (
                        f"no answer within {timeout:.0f} s: the worker was killed"
                        if line is None
                        else f"the worker died (exit code {proc.proc.poll()}): {proc.tail()[-600:]}"
                    )
                    result = _failed_case(number, seed, why, where)
                    proc.kill()
                    proc = _start(fixture, folder, log, timeout)
                with lock:
                    results.append(result)
                if progress is not None:
                    progress(result)
        except BaseException as exc:
            with lock:
                errors.append(exc)
        finally:
            if proc is not None:
                proc.kill()

    threads = [threading.Thread(target=serve, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return sorted(results, key=lambda r: r["case"])


# --- the summary ----------------------------------------------------------------------------


@dataclass
class Summary:
    """What a fuzz run found."""

    seed: int
    cases: int
    seconds: float
    # op -> outcome -> count
    outcomes: dict[str, Counter[str]]
    # error type -> count (over every operation that ended in a clear error)
    errors: Counter[str]
    kinds: Counter[str]
    other: list[dict[str, Any]]
    # mutation kind -> outcome -> count (over its cases' operations)
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)
    slowest: float = 0.0
    peak_rss_mib: float = 0.0  # the largest peak resident memory of a worker
    chunked_differs: int = 0  # "unchecked" store cases where a >1 MiB value differed

    def count(self, outcome: str) -> int:
        return sum(c[outcome] for c in self.outcomes.values())

    def render(self) -> str:
        stores = sum(self.outcomes["store"].values())
        lines = [
            f"fuzz: seed {self.seed}, {self.cases - stores} archive cases x {len(OPS)} "
            f"operations (open+read, read_archive(verify=True), import+read) and {stores} "
            f"store cases (open+read) in {self.seconds:.1f} s",
        ]
        for op in ALL_OPS:
            c = self.outcomes[op]
            if not sum(c.values()):
                continue
            lines.append(
                f"  {op:<7} same {c['same']:>5}   clear error {c['clear']:>5}   "
                + (f"unchecked {c['unchecked']:>4}" if op == "store" else
                   f"accepted {c['accepted']:>4}")
                + f"   OTHER {c['OTHER']}"
            )  # fmt: skip
        total = sum(sum(c.values()) for c in self.outcomes.values())
        lines.append(
            f"  total   {total} operations: same {self.count('same')}, clear error "
            f"{self.count('clear')}, accepted (self-consistent attacker edit) "
            f"{self.count('accepted')}, unchecked (a damaged store read back different, "
            f"without an error) {self.count('unchecked')} ({self.chunked_differs} of them in a "
            f"value over 1 MiB), OTHER {self.count('OTHER')} (must be 0)"
        )
        raw = sum(1 for case in self.other for v in case["ops"].values() if "raw " in v["detail"])
        hangs = sum(1 for case in self.other if "no answer within" in case.get("what", ""))
        fired = sum(1 for case in self.other if "unpickling happened" in str(case["ops"]))
        lines.append(
            f"  raw (non-AsyncflowError) exceptions {raw}, hangs {hangs}, code executions "
            f"{fired}; peak memory of a worker {self.peak_rss_mib:.0f} MiB (address space "
            "capped at 3 GiB)"
        )
        lines.append(
            "  clear errors by type: "
            + ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items()))
        )
        lines.append("  by mutation (cases: outcomes of their open / verify / import operations):")
        for kind, count in sorted(self.kinds.items()):
            seen = self.by_kind[kind]
            lines.append(
                f"    {kind:<16} {count:>4}: "
                + ", ".join(f"{k} {seen[k]}" for k in OUTCOMES if seen[k])
            )
        lines.append(f"  slowest case: {self.slowest:.1f} s")
        for case in self.other:
            lines.append(
                f"  OTHER: case {case['case']} seed {case['seed']} ({case['kind']}: {case['what']})"
            )
            for op, v in case["ops"].items():
                if v["outcome"] == "OTHER":
                    lines.append(f"    {op}: " + v["detail"].replace("\n", "\n      ")[:3000])
        return "\n".join(lines)


def summarise(seed: int, results: list[dict[str, Any]], seconds: float) -> Summary:
    outcomes: dict[str, Counter[str]] = {op: Counter() for op in ALL_OPS}
    errors: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    by_kind: dict[str, Counter[str]] = {}
    other = []
    for case in results:
        kinds[case["kind"]] += 1
        for op, v in case["ops"].items():
            outcomes[op][v["outcome"]] += 1
            by_kind.setdefault(case["kind"], Counter())[v["outcome"]] += 1
            if v["outcome"] == "clear":
                errors[v["errors"][0]] += 1
        if any(v["outcome"] == "OTHER" for v in case["ops"].values()):
            other.append(case)
    slowest = max((case.get("seconds", 0.0) for case in results), default=0.0)
    peak = max((case.get("peak_rss_mib", 0.0) for case in results), default=0.0)
    chunked = sum(1 for case in results if case.get("chunked_differs"))
    return Summary(
        seed, len(results), seconds, outcomes, errors, kinds, other, by_kind, slowest, peak,
        chunked,
    )  # fmt: skip


def case_seeds(seed: int, cases: int) -> list[tuple[int, int]]:
    """The ``(number, seed)`` of each case of a run with this seed."""
    rng = random.Random(seed)
    return [(i, rng.getrandbits(63)) for i in range(cases)]


def all_cases(seed: int, cases: int, store_cases: int) -> list[tuple[int, int, str]]:
    """``cases`` archive cases then ``store_cases`` store cases, numbered in one sequence."""
    found = [(i, s, "archive") for i, s in case_seeds(seed, cases)]
    rng = random.Random(seed ^ 0x5707E)
    found += [(cases + i, rng.getrandbits(63), "store") for i in range(store_cases)]
    return found


def run_fuzz(
    folder: str,
    *,
    cases: int,
    seed: int,
    workers: int = 2,
    timeout: float = 20.0,
    fixture: Fixture | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    store_cases: int = 0,
) -> Summary:
    """Build the reference (unless given) and run ``cases`` archive cases and
    ``store_cases`` store cases; the summary."""
    if fixture is None:
        fixture = build(folder)
    start = time.monotonic()
    results = run_cases(
        fixture,
        all_cases(seed, cases, store_cases),
        workers=workers,
        timeout=timeout,
        progress=progress,
    )
    return summarise(seed, results, time.monotonic() - start)


@contextlib.contextmanager
def _scratch(keep: str | None) -> Iterator[str]:
    import tempfile

    if keep:
        os.makedirs(keep, exist_ok=True)
        yield keep
        return
    folder = tempfile.mkdtemp(prefix="asyncflow-fuzz-")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None, prog: str = "benchmarks/fuzz_archive.py") -> int:
    """The command line of ``benchmarks/fuzz_archive.py``; exit code 1 if OTHER > 0."""
    import argparse

    parser = argparse.ArgumentParser(
        prog=prog,
        description="Mutate a run archive at random; opening, verifying and importing each "
        "copy must end in a clear AsyncflowError or the right data.",
    )
    parser.add_argument("--cases", type=int, default=1000, help="archive cases")
    parser.add_argument("--store-cases", type=int, default=0, help="store cases")
    parser.add_argument("--seed", type=int, default=None, help="default: a random one")
    parser.add_argument("--workers", type=int, default=max(1, min(4, os.cpu_count() or 1)))
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per case")
    parser.add_argument("--replay", type=int, metavar="CASE_SEED", help="run one case only")
    parser.add_argument("--replay-store", action="store_true", help="--replay a store case")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().getrandbits(32)
    with _scratch(args.keep) as folder:
        # A signing key of the run's own (the workers inherit it): never the user's.
        os.environ["ASYNCFLOW_KEY_FILE"] = os.path.join(folder, "signing-key")
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            fixture = build(folder)  # the flows' own output is not the report
        if args.replay is not None:
            where = "store" if args.replay_store else "archive"
            results = run_cases(fixture, [(0, args.replay, where)], workers=1, timeout=args.timeout)
            print(json.dumps(results[0], indent=2))
            return 1 if any(v["outcome"] == "OTHER" for v in results[0]["ops"].values()) else 0
        done = [0]

        def progress(result: dict[str, Any]) -> None:
            done[0] += 1
            if done[0] % 100 == 0:
                print(f"  ... {done[0]} cases", file=sys.stderr, flush=True)

        summary = run_fuzz(
            folder, cases=args.cases, seed=seed, workers=args.workers,
            timeout=args.timeout, fixture=fixture, progress=progress,
            store_cases=args.store_cases,
        )  # fmt: skip
    print(
        f"command: python {parser.prog} --cases {args.cases} --store-cases "
        f"{args.store_cases} --seed {seed}"
    )
    print(summary.render())
    return 1 if summary.count("OTHER") else 0
