"""Flows whose plain steps run on Dask workers (tests/test_dask_executor.py).

They live in an importable module: a Dask worker imports the flow class by module path.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time

import numpy as np

from asyncflow import FlowSpec, Parameter, current, executor, retry, step, timeout
from asyncflow._codecs import encode
from tests.flows.trust_flows import Alarm

BIG = 20 * 1024 * 1024  # bytes of the array a Dask step reads from its parent


class WhereFlow(FlowSpec):
    """A foreach whose tasks run on Dask: pids, current, output, artifacts."""

    greeting = Parameter("greeting", default="hi")

    @step
    def start(self):
        self.items = [1, 2, 3, 4]
        self.base = 10
        self.next(self.work, foreach="items")

    @executor("dask")
    @step
    def work(self):
        print(f"{self.greeting} from {current.pathspec}")
        print("to stderr", file=__import__("sys").stderr)
        self.pid = os.getpid()
        self.seen = (current.flow_name, current.run_id, current.step_name, current.task_id)
        self.square = self.input * self.input + self.base
        self.next(self.join)

    @executor("dask")
    @step
    def join(self, inputs):
        self.squares = [inp.square for inp in inputs]
        self.pids = [inp.pid for inp in inputs]
        self.join_pid = os.getpid()
        self.next(self.end)

    @step
    def end(self):
        self.end_pid = os.getpid()


class BigParentFlow(FlowSpec):
    """A Dask step reads a 20 MB numpy array set by its parent."""

    @step
    def start(self):
        self.arr = np.arange(BIG // 8, dtype=np.int64)
        self.next(self.use)

    @executor("dask")
    @step
    def use(self):
        self.total = int(self.arr.sum())
        self.size = int(self.arr.nbytes)
        self.arr[0] = -1  # changed in place: the task stores the new value
        self.first = int(self.arr[0])
        self.pid = os.getpid()
        self.next(self.end)

    @step
    def end(self):
        self.first_after = int(self.arr[0])


class FanOutFlow(FlowSpec):
    """Many Dask tasks all read one parent array."""

    width = Parameter("width", default=24)

    @step
    def start(self):
        self.arr = np.ones(1_000_000, dtype=np.float64)  # 8 MB
        self.items = list(range(self.width))
        self.next(self.work, foreach="items")

    @executor("dask")
    @step
    def work(self):
        time.sleep(0.05)  # long enough that both workers take tasks
        self.total = float(self.arr.sum()) + self.input
        self.worker_pid = os.getpid()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.totals = [inp.total for inp in inputs]
        self.pids = sorted({inp.worker_pid for inp in inputs})
        self.next(self.end)

    @step
    def end(self):
        pass


class RetryFlow(FlowSpec):
    """A Dask step that raises on its first attempt."""

    @step
    def start(self):
        self.next(self.flaky)

    @retry(times=1)
    @executor("dask")
    @step
    def flaky(self):
        print(f"attempt {current.retry_count}")
        if current.retry_count == 0:
            raise ValueError("first attempt fails")
        self.attempt = current.retry_count
        self.next(self.end)

    @step
    def end(self):
        pass


class DieFlow(FlowSpec):
    """A Dask step whose worker process dies (os._exit) while the marker file is absent."""

    marker = Parameter("marker", default="")

    @step
    def start(self):
        self.value = 41
        self.next(self.die)

    @executor("dask")
    @step
    def die(self):
        if not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os._exit(1)
        self.value += 1
        self.next(self.end)

    @step
    def end(self):
        pass


class DieRetryFlow(FlowSpec):
    """As DieFlow, with @retry: the second attempt runs on a fresh worker."""

    marker = Parameter("marker", default="")

    @step
    def start(self):
        self.value = 41
        self.next(self.die)

    @retry(times=1)
    @executor("dask")
    @step
    def die(self):
        if not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os._exit(1)
        self.value += 1
        self.next(self.end)

    @step
    def end(self):
        pass


class PlainFlow(FlowSpec):
    """Plain steps only, run on the flow's default executor (FlowSpec(executor="dask"))."""

    @step
    def start(self):
        self.x = 3
        self.next(self.double)

    @step
    def double(self):
        self.pid = os.getpid()
        self.y = self.x * 2
        self.next(self.end)

    @step
    def end(self):
        self.end_pid = os.getpid()


class HiddenReadFlow(FlowSpec):
    """A Dask step reads an artifact its source does not name (getattr), so it is not
    shipped: while the store file is out of the worker's sight, the read must fail."""

    store_file = Parameter("store_file", default="")
    hide = Parameter("hide", default=False)

    @step
    def start(self):
        self.hidden = [1, 2, 3]
        self.next(self.peek)

    @executor("dask")
    @step
    def peek(self):
        name = "hid" + "den"
        if not self.hide:
            self.got = getattr(self, name)
        else:
            away = self.store_file + ".away"
            os.rename(self.store_file, away)
            try:
                self.got = getattr(self, name)
            finally:
                os.rename(away, self.store_file)
        self.next(self.end)

    @step
    def end(self):
        pass


class SlowFlow(FlowSpec):
    """A Dask step that outlives its @timeout."""

    @step
    def start(self):
        self.next(self.slow)

    @timeout(seconds=1)
    @executor("dask")
    @step
    def slow(self):
        time.sleep(4)
        self.next(self.end)

    @step
    def end(self):
        pass


def _touch(path: str, padding: bytes) -> None:
    open(path, "w").close()


class BigAlarm:
    """As ``Alarm``, but a 2 MB pickle (it travels as a buffer, not as bytes)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, bytes]]:
        return (_touch, (self.path, b"x" * (2 << 20)))


def _alarm(path: str, big: bool) -> object:
    return BigAlarm(path) if big else Alarm(path)


class UnsignedFlow(FlowSpec):
    """strip removes the signature of start's pickle from the store file (as someone editing
    the store under a running flow would); peek, on Dask, reads it and must refuse it."""

    db = Parameter("db", default="")
    marker = Parameter("marker", default="")
    big = Parameter("big", default=False)

    @step
    def start(self):
        self.evil = _alarm(self.marker, self.big)
        self.next(self.strip)

    @step
    def strip(self):
        sha = encode(
            _alarm(self.marker, self.big)
        ).sha  # not self.evil: reading it would vouch for it
        with contextlib.closing(sqlite3.connect(self.db, timeout=30)) as conn:
            for _ in range(500):  # until start's commit has landed
                if conn.execute("SELECT 1 FROM blobs WHERE sha = ?", (sha,)).fetchone():
                    break
                time.sleep(0.01)
            with conn:
                conn.execute("UPDATE blobs SET mac = NULL WHERE sha = ?", (sha,))
        self.next(self.peek)

    @executor("dask")
    @step
    def peek(self):
        self.seen = self.evil  # unpickling it would create the marker file
        self.next(self.end)

    @step
    def end(self):
        pass


class SleepyFlow(FlowSpec):
    """A Dask step that takes a few seconds (to be cancelled under)."""

    @step
    def start(self):
        self.payload = list(range(1000))
        self.next(self.sleepy)

    @executor("dask")
    @step
    def sleepy(self):
        time.sleep(3 + len(self.payload) * 0)
        self.next(self.end)

    @step
    def end(self):
        pass
