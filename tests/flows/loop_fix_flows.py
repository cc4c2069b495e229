"""Flows for tests/test_loop_fixes.py: a loop around a foreach whose list grows each pass, a
``start`` step that loops on itself, and a loop step with ``@retry``."""

from __future__ import annotations

from asyncflow import FlowSpec, current, retry, step


class GrowingForeachLoopFlow(FlowSpec):
    """Each pass of the loop splits over a new, longer list: ``["1a"]``, ``["2a", "2b"]``..."""

    @step
    def start(self):
        self.round = 0
        self.next(self.fork)

    @step
    def fork(self):
        self.round += 1
        self.items = [f"{self.round}{c}" for c in "abc"[: self.round]]
        self.next(self.body, foreach="items")

    @step
    def body(self):
        self.got = (self.input, self.round)
        self.seen_pass = current.pass_index
        self.next(self.join)

    @step
    def join(self, inputs):
        self.merge_artifacts(inputs, include=["round"])
        self.more = self.round < 3
        self.next({"True": self.fork, "False": self.end}, condition="more")

    @step
    def end(self):
        pass


class StartLoopFlow(FlowSpec):
    """``start`` loops on itself three times."""

    @step
    def start(self):
        self.n = getattr(self, "n", 0) + 1
        self.again = self.n < 3
        self.next({"True": self.start, "False": self.end}, condition="again")

    @step
    def end(self):
        pass


class RetriedLoopFlow(FlowSpec):
    """A loop that never ends, with ``@retry`` on its step: the max_passes refusal is final."""

    @step
    def start(self):
        self.next(self.go)

    @retry(times=2, minutes_between_retries=0)
    @step
    def go(self):
        print(f"attempt {current.retry_count}")
        self.again = True
        self.next({"True": self.go, "False": self.end}, condition="again")

    @step
    def end(self):
        pass


class NestedLoopFlow(FlowSpec):
    """Two epochs of three batches: ``batch`` loops inside the loop of ``epoch``."""

    @step
    def start(self):
        self.epoch_no = 0
        self.seen = []
        self.next(self.epoch)

    @step
    def epoch(self):
        self.batch_no = 0
        self.next(self.batch)

    @step
    def batch(self):
        self.batch_no += 1
        self.seen = [*self.seen, current.pass_index]
        self.more = self.batch_no < 3
        self.next({"True": self.batch, "False": self.epoch_end}, condition="more")

    @step
    def epoch_end(self):
        self.epoch_no += 1
        self.again = self.epoch_no < 2
        self.next({"True": self.epoch, "False": self.end}, condition="again")

    @step
    def end(self):
        pass


class ForeachSwitchIntoJoinFlow(FlowSpec):
    """A switch inside a foreach whose cases go straight to the join: refused."""

    @step
    def start(self):
        self.items = ["a", "b"]
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.k = self.input
        self.next({"a": self.pa, "b": self.pb}, condition="k")

    @step
    def pa(self):
        self.next(self.join)

    @step
    def pb(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    import sys

    {cls.__name__: cls for cls in (GrowingForeachLoopFlow, StartLoopFlow, RetriedLoopFlow)}[
        sys.argv.pop(1)
    ].main()
