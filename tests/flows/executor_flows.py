"""Flows for the process executor: where tasks run, what they see, how they fail."""

from __future__ import annotations

import os
import signal
import time

import numpy as np

from asyncflow import FlowSpec, Parameter, catch, current, executor, retry, step, timeout


def busy(seconds: float) -> int:
    """Pure-Python CPU work for about ``seconds`` (holds the GIL the whole time)."""
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


class Point:
    """A user class: its instances are stored as (signed) pickles."""

    def __init__(self, x: int) -> None:
        self.x = x


class WhereFlow(FlowSpec):
    """Records the pid of every step; only ``work`` asks for the process executor."""

    @step
    def start(self):
        self.pid_start = os.getpid()
        self.arr = np.arange(1000, dtype=np.int64)
        self.point = Point(5)
        self.items = [1, 2, 3, 4]
        self.next(self.work, foreach="items")

    @executor("process")
    @step
    def work(self):
        print(f"working on {self.input} as {current.pathspec}")
        self.pid = os.getpid()
        self.seen = {
            "flow": current.flow_name,
            "run": current.run_id,
            "step": current.step_name,
            "task": current.task_id,
            "retry": current.retry_count,
            "index": self.index,
        }
        self.value = self.input * 10 + int(self.arr.sum()) + self.point.x
        self.arr_len = len(self.arr)
        self.t0 = time.time()
        busy(0.3)
        self.t1 = time.time()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.pids = sorted({i.pid for i in inputs})
        self.values = [i.value for i in inputs]
        self.spans = [(i.t0, i.t1) for i in inputs]
        self.seens = [i.seen for i in inputs]
        self.pid_join = os.getpid()
        self.next(self.end)

    @step
    async def end(self):
        self.pid_end = os.getpid()


class AllProcessFlow(FlowSpec):
    """Run with executor="process": every plain step goes to a worker, the async one does not."""

    @step
    def start(self):
        self.pid_start = os.getpid()
        self.big = np.ones(20 * 1024 * 1024 // 8)  # 20 MB, made in a worker
        self.next(self.middle)

    @step
    async def middle(self):
        self.pid_middle = os.getpid()
        self.next(self.end)

    @step
    def end(self):
        self.pid_end = os.getpid()
        self.big_sum = float(self.big.sum())


class FlakyProcessFlow(FlowSpec):
    """Fails on its first attempt in a worker, then succeeds."""

    @step
    def start(self):
        self.next(self.flaky)

    @retry(times=1)
    @executor("process")
    @step
    def flaky(self):
        print(f"attempt {current.retry_count}")
        self.leak = current.retry_count
        if current.retry_count == 0:
            raise ValueError("boom in a worker")
        self.pid = os.getpid()
        self.next(self.end)

    @step
    def end(self):
        pass


class DyingFlow(FlowSpec):
    """One task of a foreach ends its worker process (unless the marker file exists)."""

    marker = Parameter("marker", default="", help="once this file exists, nobody dies")
    how = Parameter("how", default="exit", help="exit or kill")

    @step
    def start(self):
        self.items = [0, 1, 2]
        self.next(self.work, foreach="items")

    @executor("process")
    @step
    def work(self):
        if self.input == 1 and not os.path.exists(self.marker):
            if self.how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            os._exit(1)
        self.result = self.input + 100
        self.next(self.join)

    @step
    def join(self, inputs):
        self.results = [i.result for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except (ProcessLookupError, FileNotFoundError):
        return False


class SlowProcessFlow(FlowSpec):
    """A process step that overruns its @timeout; it writes its pid first. With retry=1 the
    second attempt does not sleep: it records whether the first attempt's worker still lives."""

    pidfile = Parameter("pidfile", default="", help="where the worker writes its pid")

    @step
    def start(self):
        self.next(self.slow)

    @retry(times=1)
    @timeout(seconds=5)  # the deadline includes starting a worker: room for a loaded machine
    @executor("process")
    @step
    def slow(self):
        if current.retry_count == 0:
            with open(self.pidfile, "w") as fh:
                fh.write(str(os.getpid()))
            time.sleep(60)
            self.late = "never stored"
        else:
            with open(self.pidfile) as fh:
                first = int(fh.read())
            for _ in range(100):  # the kill is sent as the deadline passes: allow 5 s
                if not alive(first):
                    break
                time.sleep(0.05)
            self.first_alive = alive(first)
        self.next(self.end)

    @step
    def end(self):
        pass


class HangingProcessFlow(FlowSpec):
    """A process step that waits forever (for cancellation tests); writes its pid first."""

    pidfile = Parameter("pidfile", default="", help="where the worker writes its pid")

    @step
    def start(self):
        self.next(self.hang)

    @executor("process")
    @step
    def hang(self):
        if os.path.exists(self.pidfile + ".done"):
            self.fine = True
        else:
            with open(self.pidfile, "w") as fh:
                fh.write(str(os.getpid()))
            time.sleep(60)
        self.next(self.end)

    @step
    def end(self):
        pass


class CaughtProcessFlow(FlowSpec):
    """A process step fails after setting a value; @catch keeps it and goes on."""

    @step
    def start(self):
        self.next(self.risky)

    @catch(var="failure", print_exception=False)
    @executor("process")
    @step
    def risky(self):
        self.before = "kept"
        raise KeyError("lost key")
        self.next(self.end)

    @step
    def end(self):
        self.saw = (self.before, self.failure["type"])


class CpuFlow(FlowSpec):
    """CPU-bound tasks; run with executor="process" to keep them off the host's GIL."""

    seconds = Parameter("seconds", default=0.5, help="CPU seconds per task")
    width = Parameter("width", default=4, help="how many tasks")

    @step
    def start(self):
        self.items = list(range(self.width))
        self.next(self.burn, foreach="items")

    @step
    def burn(self):
        self.n = busy(self.seconds)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.n for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


class ManyReadsFlow(FlowSpec):
    """Twelve process tasks, one after another in one worker, each reading a 40 MB array
    and recording the worker's resident memory."""

    @step
    def start(self):
        self.big = np.ones(40 * 1024 * 1024 // 8)
        self.items = list(range(12))
        self.next(self.read, foreach="items")

    @executor("process")
    @step
    def read(self):
        self.total = float(self.big.sum())
        with open("/proc/self/statm") as fh:
            self.rss = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        self.pid = os.getpid()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.rss = [i.rss for i in inputs]
        self.pids = sorted({i.pid for i in inputs})
        self.next(self.end)

    @step
    def end(self):
        pass
