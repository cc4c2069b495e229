"""Flows for tests/test_executor_claims.py: README promises about the process executor."""

from __future__ import annotations

import ctypes
import os
import time

from asyncflow import FlowSpec, Parameter, current, executor, retry, step, timeout

# Module state as importing this module makes it; a test changes it in the coordinator.
MOOD = "as imported"


def _wait_for(path: str, seconds: float = 30) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if os.path.exists(path):
            return True
        time.sleep(0.02)
    return False


class PinnedToThreadFlow(FlowSpec):
    """Run with executor="process": ``pinned`` and ``pinned_timed`` say
    ``@executor("thread")`` (a step with a policy such as @timeout takes another path in the
    scheduler than one without)."""

    @step
    def start(self):
        self.pid_start = os.getpid()
        self.next(self.pinned)

    @executor("thread")
    @step
    def pinned(self):
        self.pid_pinned = os.getpid()
        self.next(self.pinned_timed)

    @timeout(seconds=60)
    @executor("thread")
    @step
    def pinned_timed(self):
        self.pid_pinned_timed = os.getpid()
        self.next(self.end)

    @step
    def end(self):
        self.pid_end = os.getpid()


class PoolFlow(FlowSpec):
    """Four CPU-bound plain tasks; records the pid of each and of the coordinator."""

    @step
    def start(self):
        self.items = [0, 1, 2, 3]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        end = time.perf_counter() + 0.3
        while time.perf_counter() < end:
            pass
        self.pid = os.getpid()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.pids = sorted({i.pid for i in inputs})
        self.next(self.end)

    @step
    async def end(self):  # on the loop: the coordinator's pid
        self.coordinator = os.getpid()


class SegfaultFlow(FlowSpec):
    """A process step that crashes in native code (reads address 0)."""

    @step
    def start(self):
        self.next(self.crash)

    @executor("process")
    @step
    def crash(self):
        ctypes.string_at(0)
        self.next(self.end)

    @step
    def end(self):
        pass


class SegfaultOnceFlow(FlowSpec):
    """The first attempt writes its worker's pid and crashes; @retry runs the second."""

    pidfile = Parameter("pidfile", default="", help="where the first attempt writes its pid")

    @step
    def start(self):
        self.next(self.crash)

    @retry(times=1)
    @executor("process")
    @step
    def crash(self):
        if current.retry_count == 0:
            with open(self.pidfile, "w") as fh:
                fh.write(str(os.getpid()))
            ctypes.string_at(0)
        self.pid = os.getpid()
        self.next(self.end)

    @step
    def end(self):
        pass


class SiblingFlow(FlowSpec):
    """Two process tasks at once: index 1's worker exits while index 0 is still working."""

    @step
    def start(self):
        self.items = [0, 1]
        self.next(self.work, foreach="items")

    @executor("process")
    @step
    def work(self):
        if self.input == 1:
            time.sleep(0.2)  # let index 0 start in the other worker
            os._exit(3)
        time.sleep(1.5)
        self.result = "finished"
        self.next(self.join)

    @step
    def join(self, inputs):
        self.results = [i.result for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


class WaitingProcessFlow(FlowSpec):
    """A process step that writes its pid to ``pidfile`` and waits for ``pidfile + '.go'``."""

    pidfile = Parameter("pidfile", default="", help="where the worker writes its pid")

    @step
    def start(self):
        self.next(self.wait)

    @executor("process")
    @step
    def wait(self):
        with open(self.pidfile + ".tmp", "w") as fh:
            fh.write(str(os.getpid()))
        os.replace(self.pidfile + ".tmp", self.pidfile)
        self.went = _wait_for(self.pidfile + ".go", seconds=60)
        self.next(self.end)

    @step
    def end(self):
        pass


class MoodFlow(FlowSpec):
    """Reads the module global MOOD in a thread step and in a process step."""

    @step
    def start(self):
        self.in_thread = MOOD
        self.next(self.remote)

    @executor("process")
    @step
    def remote(self):
        self.in_worker = MOOD
        self.next(self.end)

    @step
    def end(self):
        pass


class EchoFlow(FlowSpec):
    """A process step that prints to stdout and stderr."""

    @step
    def start(self):
        self.next(self.talk)

    @executor("process")
    @step
    def talk(self):
        import sys

        print("hello from a worker")
        print("warning from a worker", file=sys.stderr)
        self.next(self.end)

    @step
    def end(self):
        pass
