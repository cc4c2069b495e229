"""Flows exercising @retry, @catch and @timeout."""

from __future__ import annotations

import os
import time

import anyio

from asyncflow import FlowSpec, Parameter, catch, current, retry, step, timeout


class FlakyFlow(FlowSpec):
    """Fails twice, then succeeds; each attempt leaves a mark."""

    @step
    def start(self):
        self.seed = 7
        self.next(self.flaky)

    @retry(times=2)
    @step
    def flaky(self):
        print(f"attempt {current.retry_count}")
        self.seen_leak = hasattr(self, "leak")
        if current.retry_count < 2:
            self.leak = current.retry_count
            raise ValueError(f"boom {current.retry_count}")
        self.final_attempt = current.retry_count
        self.next(self.end)

    @step
    def end(self):
        self.leak_downstream = hasattr(self, "leak")


class ExhaustedFlow(FlowSpec):
    """Never succeeds: the retries run out."""

    @step
    def start(self):
        self.next(self.always)

    @retry(times=1)
    @step
    async def always(self):
        raise RuntimeError(f"attempt {current.retry_count} failed")
        self.next(self.end)

    @step
    def end(self):
        pass


class PausedRetryFlow(FlowSpec):
    """Retries with a pause of 0.005 minutes (0.3 s)."""

    @step
    def start(self):
        self.next(self.flaky)

    @retry(times=1, minutes_between_retries=0.005)
    @step
    def flaky(self):
        if current.retry_count == 0:
            raise ValueError("first attempt fails")
        self.next(self.end)

    @step
    def end(self):
        pass


class CaughtFlow(FlowSpec):
    """A failing step is caught; the flow goes on."""

    @step
    def start(self):
        self.next(self.risky, self.fine)

    @catch(var="error", print_exception=True)
    @step
    def risky(self):
        self.before = "kept"
        raise KeyError("missing thing")
        self.next(self.join)

    @catch(var="error")
    @step
    async def fine(self):
        self.value = 3
        self.next(self.join)

    @step
    def join(self, inputs):
        self.risky_error = inputs.risky.error
        self.fine_error = inputs.fine.error
        self.before = inputs.risky.before
        self.next(self.end)

    @step
    def end(self):
        pass


class TimeoutFlow(FlowSpec):
    """A coroutine step that overruns its deadline."""

    @step
    def start(self):
        self.next(self.slow)

    @timeout(seconds=0.2)
    @step
    async def slow(self):
        await anyio.sleep(10)
        self.next(self.end)

    @step
    def end(self):
        pass


class PlainTimeoutFlow(FlowSpec):
    """A plain step that overruns its deadline; its late result must be dropped."""

    marker = Parameter("marker", default="", help="file the late thread writes")

    @step
    def start(self):
        self.next(self.slow)

    @timeout(seconds=0.2)
    @step
    def slow(self):
        time.sleep(0.6)
        self.late = "should never be stored"
        with open(self.marker, "w") as fh:
            fh.write("the thread ran to the end")
        self.next(self.end)

    @step
    def end(self):
        pass


class RetriedTimeoutFlow(FlowSpec):
    """Each attempt times out, then the retries run out."""

    @step
    def start(self):
        self.next(self.slow)

    @retry(times=1)
    @timeout(seconds=0.1)
    @step
    async def slow(self):
        await anyio.sleep(5)
        self.next(self.end)

    @step
    def end(self):
        pass


class CatchOnForeachFlow(FlowSpec):
    """@catch on a foreach split is refused."""

    @catch(var="error")
    @step
    def start(self):
        self.items = [1, 2]
        self.next(self.body, foreach="items")

    @step
    def body(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


def marker_exists(path: str) -> bool:
    """Whether the late plain-step thread got to write its marker."""
    return os.path.exists(path)
