"""Flows with @resources and @environment steps on Dask (tests/test_placement_dask.py).

They live in an importable module: a Dask worker imports the flow class by module path.
"""

from __future__ import annotations

import os
import time

from asyncflow import FlowSpec, environment, resources, step


class _Pair(FlowSpec):
    """Two tasks of one step, each sleeping a second and noting when it ran."""

    @step
    def start(self):
        self.items = [0, 1]
        self.next(self.work, foreach="items")

    def _work(self):
        self.began = time.time()
        time.sleep(1.0)
        self.ended = time.time()
        self.pid = os.getpid()

    @step
    def join(self, inputs):
        self.spans = sorted((i.began, i.ended) for i in inputs)
        self.pids = sorted(i.pid for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


class CpuHungryFlow(_Pair):
    @resources(cpu=2)
    @step
    def work(self):
        self._work()
        self.next(self.join)


class CpuFreeFlow(_Pair):
    @step
    def work(self):
        self._work()
        self.next(self.join)


class TooBigFlow(FlowSpec):
    @resources(cpu=4)
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class UndeclaredMemoryFlow(FlowSpec):
    @resources(cpu=1, memory=10**9)  # a petabyte: the cluster declares no MEMORY
    @step
    def start(self):
        self.ran = True
        self.next(self.end)

    @step
    def end(self):
        pass


class DaskEnvFlow(FlowSpec):
    @environment(vars={"AF_DASK_SETTING": "on"})
    @step
    def start(self):
        self.seen = os.environ.get("AF_DASK_SETTING")
        self.pid = os.getpid()
        self.next(self.end)

    @step
    def end(self):
        self.after = os.environ.get("AF_DASK_SETTING")
        self.end_pid = os.getpid()


class EnvPairFlow(_Pair):
    @environment(vars={"AF_PAIR": "1"})
    @step
    def work(self):
        self._work()
        self.next(self.join)
