"""How long the host's event loop is held up while a flow runs beside it.

A ticker coroutine sleeps 2 ms at a time on the same loop that awaits ``run()`` (or the
client's read) and records how late each wake-up is. Each scenario reports the p50, p99 and
max of those lags, each the median over ``--repeat`` runs; the baseline is the same ticker
while the loop runs nothing else. Target (issue 10): p99 <= 20 ms and max <= 50 ms for (a),
(b) and (c).

Scenarios (each a real flow on a real store file):

* (a) ``cpu-process``: 16 CPU-bound plain steps with ``executor="process"``;
* (b) for a ``--mb`` MB (default 500) numpy array, ``bytes`` value and pickled object (an
  object of the user's holding that many bytes), each separately:
  ``set-*``: a coroutine step sets it (made in a thread, as a well-behaved step would), and
  the next coroutine step reads it back while it may still be pending in memory;
  ``read-*``: a resumed run's coroutine step reads it from the file;
  ``client-*``: the client's ``await step.adata(...)`` of it;
* ``export-bytes`` / ``import-bytes``: ``await aexport_runs(...)`` of the run holding the
  bytes value, and ``await aimport_archive(...)`` of that archive into a new store;
* ``free-bytes`` / ``free-numpy``: no flow, a worker thread drops the last reference to such a
  value (what freeing it costs the loop; the floor under the ``bytes`` scenarios);
* ``getattr-bytes``: a coroutine step reads the bytes value with ``getattr(self, name)``,
  which its source does not name, so it is read on the loop (README, "What can still hold
  up the loop");
* ``plain-read-bytes``: a plain step (a worker thread) reads the bytes value;
* ``client-list``: the client awaits a 36 MB msgpack list of 4 million floats;
* (c) ``tiny-plain`` / ``tiny-async``: a 1,000-wide foreach of trivial plain steps, and of
  trivial coroutine steps; ``tiny-plain-4``: the plain ones at ``max_workers=4``;
  ``tiny-process``: the plain ones with ``executor="process"``;
* (d) ``cpu``: 16 CPU-bound pure-Python plain steps at ``max_workers=16`` on threads;
* ``sleep``: 16 plain steps in ``time.sleep`` (they release the GIL).

    python benchmarks/bench_loop_lag.py --repeat 3             # ~4 min, ~3 GB of memory
    python benchmarks/bench_loop_lag.py --repeat 3 --mb 200    # a smaller machine
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import Report, parse_args, progress, scratch_dir

from asyncflow import Flow, FlowSpec, Parameter, aexport_runs, aimport_archive, step

SPIN = 3_000_000  # additions per CPU task: ~0.2 s of pure Python each
TICK = 0.002
P99_TARGET_MS = 20.0
MAX_TARGET_MS = 50.0
SLICE = 1 << 20


class Bulky:
    """A user's object holding a large payload: stored with the pickle codec."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload


def make_value(kind: str, mb: int) -> Any:
    """A value of ``mb`` MB of real (written) memory, made without holding the GIL long."""
    import numpy as np

    array = np.full(mb << 20, 7, dtype=np.uint8)  # fills with the GIL released
    if kind == "numpy":
        return array
    view = memoryview(array)  # bytes by slices, joined without the GIL
    data = b"".join([bytes(view[i : i + SLICE]) for i in range(0, array.nbytes, SLICE)])
    return data if kind == "bytes" else Bulky(data)


def size_of(value: Any) -> int:
    return int(value.nbytes) if hasattr(value, "nbytes") else len(getattr(value, "payload", value))


class Big(FlowSpec):
    kind = Parameter("kind", default="bytes")
    mb = Parameter("mb", default=500)

    @step
    async def start(self) -> None:
        self.big = await anyio.to_thread.run_sync(make_value, self.kind, self.mb)
        self.next(self.read)

    @step
    async def read(self) -> None:
        self.n = size_of(self.big)
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class BigGetattr(FlowSpec):
    mb = Parameter("mb", default=500)
    field = Parameter("field", default="big")

    @step
    async def start(self) -> None:
        self.big = await anyio.to_thread.run_sync(make_value, "bytes", self.mb)
        self.next(self.read)

    @step
    async def read(self) -> None:
        self.n = size_of(getattr(self, self.field))  # no `self.big` in the source
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class BigPlainRead(FlowSpec):
    mb = Parameter("mb", default=500)

    @step
    async def start(self) -> None:
        self.big = await anyio.to_thread.run_sync(make_value, "bytes", self.mb)
        self.next(self.read)

    @step
    def read(self) -> None:
        self.n = len(self.big)
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class SleepFan(FlowSpec):
    @step
    def start(self) -> None:
        self.items = list(range(16))
        self.next(self.work, foreach="items")

    @step
    def work(self) -> None:
        time.sleep(0.3)
        self.next(self.join)

    @step
    def join(self, inputs: object) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class CpuFan(FlowSpec):
    @step
    def start(self) -> None:
        self.items = list(range(16))
        self.next(self.work, foreach="items")

    @step
    def work(self) -> None:
        total = 0
        for i in range(SPIN):
            total += i
        self.total = total
        self.next(self.join)

    @step
    def join(self, inputs: object) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class TinyPlain(FlowSpec):
    @step
    def start(self) -> None:
        self.items = list(range(1000))
        self.next(self.work, foreach="items")

    @step
    def work(self) -> None:
        self.out = self.input
        self.next(self.join)

    @step
    def join(self, inputs: object) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class TinyAsync(FlowSpec):
    @step
    def start(self) -> None:
        self.items = list(range(1000))
        self.next(self.work, foreach="items")

    @step
    async def work(self) -> None:
        self.out = self.input
        self.next(self.join)

    @step
    def join(self, inputs: object) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class Keep(FlowSpec):
    @step
    def start(self) -> None:
        import numpy as np

        self.value = np.random.default_rng(0).random(4_000_000).tolist()  # 36 MB msgpack
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


async def lags_during(work: Callable[[], Awaitable[object]]) -> list[float]:
    """Every lateness (s) of a 2 ms ticker while ``work()`` runs on the same loop."""
    lags: list[float] = []
    done = anyio.Event()

    async def ticker() -> None:
        while not done.is_set():
            before = time.perf_counter()
            await anyio.sleep(TICK)
            lags.append(time.perf_counter() - before - TICK)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        try:
            await work()
        finally:
            done.set()
    return lags


def stats(lags: list[float]) -> tuple[float, float, float]:
    """p50, p99 and max of ``lags``, in ms."""
    if not lags:
        return (float("nan"),) * 3
    ordered = sorted(lags)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (statistics.median(ordered) * 1e3, p99 * 1e3, ordered[-1] * 1e3)


async def step_value(store: str, flow: str, name: str) -> Any:
    run = await (await Flow.aopen(flow, store)).alatest_run()
    assert run is not None and run.successful, f"{flow} did not succeed"
    return await (await run.astep("read")).adata(name)


async def scenario(name: str, folder: str, mb: int) -> list[float] | None:
    """The ticker's lags during scenario ``name``; None when it cannot run here."""
    kind = name.split("-")[-1]
    big = name.startswith(("set-", "read-", "client-")) and name != "client-list"
    store = os.path.join(folder, f"{kind if big else name}.db")
    if name == "idle":
        return await lags_during(lambda: anyio.sleep(1.0))
    if name == "sleep":
        return await lags_during(lambda: SleepFan(store=store, max_workers=16, echo=False).run())
    if name == "cpu":
        return await lags_during(lambda: CpuFan(store=store, max_workers=16, echo=False).run())
    if name == "cpu-process":
        flow = CpuFan(store=store, max_workers=16, echo=False, executor="process")
        return await lags_during(flow.run)
    if name == "tiny-plain":
        return await lags_during(lambda: TinyPlain(store=store, echo=False).run())
    if name == "tiny-plain-4":
        return await lags_during(lambda: TinyPlain(store=store, echo=False, max_workers=4).run())
    if name == "tiny-process":
        tiny = TinyPlain(store=store, echo=False, executor="process")
        return await lags_during(tiny.run)
    if name == "tiny-async":
        return await lags_during(lambda: TinyAsync(store=store, echo=False).run())
    if name == "client-list":
        if not os.path.exists(store):
            await Keep(store=store, echo=False).run()
        run = await (await Flow.aopen("Keep", store)).alatest_run()
        assert run is not None
        return await lags_during(lambda: run.adata("value"))
    if name.startswith("set-"):
        # A fresh store each repeat: the value is new, so it is encoded and written.
        fresh = os.path.join(folder, f"{kind}-{time.monotonic_ns()}.db")
        lags = await lags_during(lambda: Big(store=fresh, echo=False).run(kind=kind, mb=mb))
        assert await step_value(fresh, "Big", "n") == mb << 20
        os.replace(fresh, store)  # kept for the read-* and client-* scenarios
        return lags
    if name.startswith("read-"):
        lags = await lags_during(lambda: Big(store=store, echo=False).resume(step="read"))
        assert await step_value(store, "Big", "n") == mb << 20
        return lags
    if name.startswith("client-"):
        run = await (await Flow.aopen("Big", store)).alatest_run()
        assert run is not None
        start = await run.astep("start")
        got: list[Any] = []
        lags = await lags_during(lambda: _append(got, start.adata("big")))
        assert size_of(got[0]) == mb << 20
        return lags
    if name in ("export-bytes", "import-bytes"):
        # The archive of the run that holds the bytes value (from set-bytes), then its import.
        source = os.path.join(folder, "bytes.db")
        archive = os.path.join(folder, "bytes.afa")
        if not os.path.exists(source):
            return None  # needs set-bytes first
        if name == "export-bytes":
            run = await (await Flow.aopen("Big", source)).alatest_run()
            assert run is not None
            return await lags_during(lambda: aexport_runs(archive, [run], overwrite=True))
        target = os.path.join(folder, f"imported-{time.monotonic_ns()}.db")
        lags = await lags_during(lambda: aimport_archive(archive, target))
        os.unlink(target)
        return lags
    if name in ("free-bytes", "free-numpy"):
        # Not asyncflow: what dropping the last reference to such a value costs the loop
        # when a worker thread does it (CPython holds the GIL while the memory is returned).
        holder = [await anyio.to_thread.run_sync(make_value, kind, mb)]
        return await lags_during(lambda: anyio.to_thread.run_sync(holder.clear))
    if name == "getattr-bytes":
        if not os.path.exists(store):
            await BigGetattr(store=store, echo=False).run(mb=mb)
        lags = await lags_during(lambda: BigGetattr(store=store, echo=False).resume(step="read"))
        assert await step_value(store, "BigGetattr", "n") == mb << 20
        return lags
    if name == "plain-read-bytes":
        if not os.path.exists(store):
            await BigPlainRead(store=store, echo=False).run(mb=mb)
        lags = await lags_during(lambda: BigPlainRead(store=store, echo=False).resume(step="read"))
        assert await step_value(store, "BigPlainRead", "n") == mb << 20
        return lags
    raise ValueError(name)


async def _append(out: list[Any], value: Awaitable[Any]) -> None:
    out.append(await value)


LABELS = {
    "idle": "idle loop (baseline)",
    "cpu-process": "(a) 16 CPU-bound plain steps, executor='process'",
    "set-numpy": "(b) coroutine step sets {mb} MB numpy array",
    "read-numpy": "(b) coroutine step reads {mb} MB numpy (file)",
    "client-numpy": "(b) client awaits {mb} MB numpy array",
    "set-bytes": "(b) coroutine step sets {mb} MB bytes",
    "read-bytes": "(b) coroutine step reads {mb} MB bytes (file)",
    "client-bytes": "(b) client awaits {mb} MB bytes",
    "set-pickle": "(b) coroutine step sets {mb} MB pickled object",
    "read-pickle": "(b) coroutine step reads {mb} MB pickled (file)",
    "client-pickle": "(b) client awaits {mb} MB pickled object",
    "export-bytes": "aexport_runs of the run holding {mb} MB bytes",
    "import-bytes": "aimport_archive of that archive",
    "free-bytes": "a thread frees a {mb} MB bytes (no flow)",
    "free-numpy": "a thread frees a {mb} MB numpy array (no flow)",
    "getattr-bytes": "coroutine getattr(self, name) of {mb} MB bytes",
    "plain-read-bytes": "plain step reads {mb} MB bytes",
    "client-list": "client awaits 36 MB msgpack list of floats",
    "tiny-plain": "(c) 1,000-wide foreach, trivial plain steps",
    "tiny-async": "(c) 1,000-wide foreach, trivial async steps",
    "tiny-plain-4": "(c) 1,000-wide foreach, trivial plain steps, max_workers=4",
    "tiny-process": "(c) 1,000-wide foreach, trivial plain steps, executor='process'",
    "cpu": "(d) 16 CPU-bound plain steps, threads, 16 wide",
    "sleep": "16 plain steps in time.sleep, threads",
}
TARGETED = (
    "cpu-process",
    "set-",
    "read-",
    "client-numpy",
    "client-bytes",
    "client-pickle",
    "export-",
    "import-",
    "tiny-",
)


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mb", type=int, default=500, help="size of the (b) values in MB (default 500)"
    )
    parser.add_argument(
        "--only", metavar="NAMES", help="comma-separated scenarios to run (default: all)"
    )


def main() -> None:
    args = parse_args(__doc__ or "", repeat=3, extra=options)
    mb = 16 if args.quick else args.mb
    names = list(LABELS)
    if args.only:
        names = ["idle", *[n for n in args.only.split(",") if n != "idle"]]
    samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name in names}
    with scratch_dir(args.dir, "af-lag-") as folder:
        for i in range(args.repeat):
            for name in names:
                progress(f"repeat {i + 1}/{args.repeat}: {name}")
                lags = anyio.run(scenario, name, folder, mb)
                if lags is not None:
                    samples[name].append(stats(lags))
    report = Report(
        f"event-loop lag while a flow runs (a {TICK * 1e3:g} ms ticker's lateness)", args
    )
    for name in names:
        rows = samples[name]
        if not rows:
            progress(f"{name}: skipped")
            continue
        label = LABELS[name].format(mb=mb)
        targeted = name.startswith(TARGETED)
        for which, index in (("p50", 0), ("p99", 1), ("max", 2)):
            target = None
            if targeted and which != "p50":
                target = P99_TARGET_MS if which == "p99" else MAX_TARGET_MS
            report.add(f"{label}: {which}", [r[index] for r in rows], "ms", target=target)
    report.print()


if __name__ == "__main__":
    main()
