"""Flows for the careless-user and attacker tests of the process executor."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from asyncflow import FlowSpec, Parameter, executor, step


class OutlivedFlow(FlowSpec):
    """A process step leaves children behind (one forked, one exec'd that inherits every
    fd it may), then its worker dies: the children must not hide the worker's death."""

    pidfile = Parameter("pidfile", default="")

    @executor("process")
    @step
    def start(self):
        pids = []
        child = os.fork()
        if child == 0:  # a forked child that outlives the worker (multiprocessing does this)
            time.sleep(60)
            os._exit(0)
        pids.append(child)
        sleeper = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(60)"], close_fds=False
        )
        pids.append(sleeper.pid)
        with open(self.pidfile, "w") as f:
            f.write(" ".join(map(str, pids)))
        os._exit(3)
        self.next(self.end)

    @step
    def end(self):
        pass


class IdleKillFlow(FlowSpec):
    """The worker of ``start`` is killed from outside while idle, before ``work`` runs."""

    @executor("process")
    @step
    def start(self):
        self.pid_start = os.getpid()
        self.next(self.kill)

    @step
    async def kill(self):
        import signal

        import anyio

        os.kill(self.pid_start, signal.SIGKILL)
        for _ in range(200):  # until the pool's idle worker is really gone
            try:
                os.kill(self.pid_start, 0)
            except ProcessLookupError:
                break
            await anyio.sleep(0.01)
        self.next(self.work)

    @executor("process")
    @step
    def work(self):
        self.pid_work = os.getpid()
        self.next(self.end)

    @step
    def end(self):
        pass


class ChdirFlow(FlowSpec):
    """A step changes the working directory before the first process task starts."""

    elsewhere = Parameter("elsewhere", default="")

    @step
    async def start(self):
        self.x = 41
        os.chdir(self.elsewhere)
        self.next(self.work)

    @executor("process")
    @step
    def work(self):
        self.y = self.x + 1
        self.next(self.end)

    @step
    def end(self):
        pass


class NeedsTwo(Exception):
    """Pickles (as its class and ``args``) but does not unpickle: ``__init__`` wants two."""

    def __init__(self, a, b):
        super().__init__(a)


class UnreadableItemsFlow(FlowSpec):
    """A process step's foreach list holds an object that will not unpickle elsewhere."""

    @executor("process")
    @step
    def start(self):
        self.items = [NeedsTwo(1, 2)]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class Interrupted(BaseException):
    """A BaseException of the step's own (not an Exception)."""


class InterruptFlow(FlowSpec):
    """A process step raises KeyboardInterrupt or another BaseException."""

    what = Parameter("what", default="keyboard")

    @executor("process")
    @step
    def start(self):
        self.before = 1
        if self.what == "keyboard":
            raise KeyboardInterrupt("pressed in the step")
        raise Interrupted("a base exception")
        self.next(self.end)

    @step
    def end(self):
        pass


class LingeringThreadFlow(FlowSpec):
    """Each process task leaves a non-daemon thread running (a pool a library never shut
    down, say): the run must still end at once."""

    @step
    def start(self):
        self.items = [0, 1, 2]
        self.next(self.work, foreach="items")

    @executor("process")
    @step
    def work(self):
        import threading

        threading.Thread(target=time.sleep, args=(3600,)).start()
        self.pid = os.getpid()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.pids = sorted({i.pid for i in inputs})
        self.next(self.end)

    @step
    def end(self):
        pass
