"""Start-up cost, each figure from fresh processes: importing asyncflow, a hello-world run
from the command line, and the first run of a 100-step chain.

    python benchmarks/bench_startup.py [--repeat N] [--quick] [--json PATH]

Every child is a new interpreter (this one's, with PYTHONDONTWRITEBYTECODE removed from its
environment: an installed package has its bytecode cached, and without the cache every figure
here measures the compiler). One warm-up child runs first so that the cache is written. The
figures, medians over the children, each next to a baseline from the same run:

* ``import asyncflow``: the top-level total of ``python -X importtime`` (the import alone,
  its tracing overhead included) and the time the import takes in the child (perf_counter
  around it); then the process wall of that child (which also defines a flow, below)
  against ``python -c pass``, children alternating;
* defining a flow: ``from asyncflow import FlowSpec, step`` and a two-step class, in the
  child (what every flow file pays before it runs);
* hello world: the wall of ``python hello.py run`` (start -> end, one print, an existing
  store file), against ``python -c pass``, children alternating;
* first run of a 100-step chain of plain steps in a new process, on a new store file: the
  wall of constructing the flow and awaiting ``run()``, per step, with the modules that the
  run imports already imported (found by a probe child in the same run), so it is the run's
  own one-time work; then the same with those imports included; then the process wall. The
  baseline is the second run of the same flow in the same child (warm).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

from _common import Report, parse_args, progress, scratch_dir
from bench_chain import chain_source

TARGET_IMPORT_MS = 60.0
TARGET_HELLO_S = 0.15
TARGET_FIRST_RUN_MS_PER_STEP = 0.3
STEPS = 100
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

HELLO = """\
from asyncflow import FlowSpec, step


class HelloFlow(FlowSpec):
    @step
    def start(self):
        self.message = "hello"
        self.next(self.end)

    @step
    def end(self):
        print(self.message, "world")


if __name__ == "__main__":
    HelloFlow()
"""

IMPORT_CHILD = """\
import time
t0 = time.perf_counter()
import asyncflow
t1 = time.perf_counter()
from asyncflow import FlowSpec, step

class Two(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass

t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""

# argv: folder, store path, mode ("probe": print the modules a run imports; "timed": import
# the modules named in the file argv[4] first, then time; "cold": time with the imports).
CHAIN_CHILD = """\
import asyncio, json, sys, time
folder, store, mode = sys.argv[1:4]
sys.path.insert(0, folder)
import chain_startup_flow
if mode == "timed":
    import importlib
    with open(sys.argv[4], encoding="utf-8") as f:
        for name in json.load(f):
            try:
                importlib.import_module(name)
            except Exception:
                pass
before = set(sys.modules)

async def main():
    start = time.perf_counter()
    cpu = time.process_time()
    run = await chain_startup_flow.ChainBench(store=store, echo=False).run()
    first, first_cpu = time.perf_counter() - start, time.process_time() - cpu
    assert run.data.x == STEPS_MINUS_ONE, "wrong result"
    start = time.perf_counter()
    await chain_startup_flow.ChainBench(store=store, echo=False).run()
    return first, first_cpu, time.perf_counter() - start

first, first_cpu, second = asyncio.run(main())
print(json.dumps({"first": first, "first_cpu": first_cpu, "second": second,
                  "imported": sorted(set(sys.modules) - before)}))
""".replace("STEPS_MINUS_ONE", str(STEPS - 1))


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


_cpu: list[float] = []  # CPU seconds (user + system) of each child wall() ran, in order


def wall(argv: list[str], cwd: str, env: dict[str, str]) -> tuple[float, str]:
    """Seconds from spawning ``argv`` to its exit, and its stdout; a failure stops the bench.
    The child's CPU time goes to ``_cpu`` (steadier than wall time on a busy machine)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    _cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"{argv!r} failed ({done.returncode}):\n{done.stderr}")
    return seconds, done.stdout


def importtime_total(cwd: str, env: dict[str, str]) -> float:
    """The cumulative microseconds of the top-level ``asyncflow`` line of -X importtime."""
    argv = [sys.executable, "-X", "importtime", "-c", "import asyncflow"]
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=True)
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[2].rstrip() == " asyncflow":
            return int(parts[1]) / 1e6
    raise SystemExit(f"no asyncflow line in -X importtime:\n{done.stderr}")


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], repeat=5)
    n = args.repeat
    report = Report("bench_startup: fresh processes", args)
    env = child_env()
    py = sys.executable
    with scratch_dir(args.dir, "bench_startup-") as folder:
        hello = os.path.join(folder, "hello.py")
        with open(hello, "w", encoding="utf-8") as f:
            f.write(HELLO)
        with open(os.path.join(folder, "chain_startup_flow.py"), "w", encoding="utf-8") as f:
            f.write(chain_source(STEPS))
        chain_child = os.path.join(folder, "chain_child.py")
        with open(chain_child, "w", encoding="utf-8") as f:
            f.write(CHAIN_CHILD)
        env["ASYNCFLOW_STORE"] = os.path.join(folder, "hello.db")
        # Warm-up: writes the bytecode cache of asyncflow and the scripts, creates hello.db.
        wall([py, "-c", "import asyncflow._cli._flow_cmds"], folder, env)
        wall([py, hello, "run"], folder, env)

        progress("import asyncflow ...")
        traced = [importtime_total(folder, env) for _ in range(n)]
        in_child: list[float] = []
        define: list[float] = []
        bare: list[float] = []
        imported: list[float] = []
        for _ in range(max(3, 2 * n)):
            bare.append(wall([py, "-c", "pass"], folder, env)[0])
            seconds, out = wall([py, "-c", IMPORT_CHILD], folder, env)
            imported.append(seconds)
            a, b = out.split()
            in_child.append(float(a))
            define.append(float(b))

        progress("hello world ...")
        hello_bare: list[float] = []
        hello_run: list[float] = []
        bare_cpu: list[float] = []
        hello_cpu: list[float] = []
        for _ in range(max(3, 2 * n)):
            hello_bare.append(wall([py, "-c", "pass"], folder, env)[0])
            bare_cpu.append(_cpu[-1])
            hello_run.append(wall([py, hello, "run"], folder, env)[0])
            hello_cpu.append(_cpu[-1])

        progress("first run of a chain ...")
        probe = os.path.join(folder, "probe.db")
        out = wall([py, chain_child, folder, probe, "probe"], folder, env)[1]
        modules = os.path.join(folder, "modules.json")
        with open(modules, "w", encoding="utf-8") as f:
            json.dump(json.loads(out)["imported"], f)
        timed: list[dict[str, Any]] = []
        cold: list[dict[str, Any]] = []
        process: list[float] = []
        for r in range(n):
            store = os.path.join(folder, f"timed{r}.db")
            argv = [py, chain_child, folder, store, "timed", modules]
            timed.append(json.loads(wall(argv, folder, env)[1]))
            store = os.path.join(folder, f"cold{r}.db")
            seconds, out = wall([py, chain_child, folder, store, "cold"], folder, env)
            cold.append(json.loads(out))
            process.append(seconds)
        leftover = [m for t in timed for m in t["imported"]]

    report.add(
        "import asyncflow: -X importtime total",
        traced,
        "ms",
        scale=1e3,
        target=TARGET_IMPORT_MS,
        note="the import alone, with the tracer's own overhead",
    )
    report.add(
        "import asyncflow: in the child",
        in_child,
        "ms",
        scale=1e3,
        target=TARGET_IMPORT_MS,
        baseline="python -c pass (process wall)",
        baseline_samples=bare,
    )
    report.add(
        "import asyncflow and define a flow: process wall",
        imported,
        "ms",
        scale=1e3,
        baseline="python -c pass",
        baseline_samples=bare,
    )
    report.add(
        "define a flow: from asyncflow import FlowSpec, step",
        define,
        "ms",
        scale=1e3,
        note="after import asyncflow: the names' modules and a two-step class",
    )
    report.add(
        "python hello.py run: process wall",
        hello_run,
        "s",
        target=TARGET_HELLO_S,
        baseline="python -c pass",
        baseline_samples=hello_bare,
    )
    report.add(
        "python hello.py run: CPU (user + system)",
        hello_cpu,
        "s",
        baseline="python -c pass",
        baseline_samples=bare_cpu,
    )
    report.add("python -c pass: process wall", hello_bare + bare, "s")
    second = [t["second"] / STEPS for t in timed + cold]
    report.add(
        f"chain {STEPS}: first run in a new process, per step",
        [t["first"] / STEPS for t in timed],
        "ms",
        scale=1e3,
        target=TARGET_FIRST_RUN_MS_PER_STEP,
        baseline="second run, same process",
        baseline_samples=second,
        note="the run's imports done before the clock starts"
        + (f"; still imported during it: {sorted(set(leftover))}" if leftover else ""),
    )
    report.add(
        f"chain {STEPS}: first run, CPU per step",
        [t["first_cpu"] / STEPS for t in timed],
        "ms",
        scale=1e3,
    )
    report.add(
        f"chain {STEPS}: first run with its imports, per step",
        [c["first"] / STEPS for c in cold],
        "ms",
        scale=1e3,
        baseline="second run, same process",
        baseline_samples=second,
        note="the modules the run needs are imported by the constructor and run()",
    )
    report.add(
        f"chain {STEPS}: process wall (import, define, 2 runs)",
        process,
        "s",
        baseline="python -c pass",
        baseline_samples=hello_bare + bare,
    )
    report.print()


if __name__ == "__main__":
    main()
