"""Flows reading ``self.input``, ``self.index`` and artifacts inside steps (their fast path)."""

from __future__ import annotations

from typing import Any

from asyncflow import FlowSpec, current, retry, step


class InputReadsFlow(FlowSpec):
    """A foreach over two lists: each task reads, mutates and tries to set its element, in a
    plain step and then in a coroutine step; outside the foreach both read None."""

    @step
    def start(self) -> None:
        self.outside = (self.input, self.index, self.input, self.index)
        self.items = [[1], [2]]
        self.next(self.body, foreach="items")

    @step
    def body(self) -> None:
        first = self.input
        self.same_object = first is self.input and self.input is self.input
        frame = self.foreach_stack()[-1]
        self.stack_agrees = frame[2] is self.input and frame[0] == self.index
        self.input.append("mine")
        self.seen = list(self.input)
        self.seen_index = (self.index, self.index)
        try:
            self.input = 5
        except AttributeError as exc:
            self.set_input_error = str(exc)
        try:
            self.index = 5
        except AttributeError as exc:
            self.set_index_error = str(exc)
        self.own_names = sorted(n for n in vars(self) if not n.startswith("_"))
        self.next(self.coro)

    @step
    async def coro(self) -> None:
        self.coro_seen = (list(self.input), self.index, self.index)
        self.input.append("coro")
        self.coro_after = list(self.input)
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.join_reads = (self.input, self.index)
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class RetriedInputFlow(FlowSpec):
    """A foreach task that mutates its element, then fails once: the retry starts afresh."""

    @step
    def start(self) -> None:
        self.items = [["element"]]
        self.next(self.body, foreach="items")

    @retry(times=1, minutes_between_retries=0)
    @step
    def body(self) -> None:
        self.input.append(f"attempt {current.retry_count}")
        if current.retry_count == 0:
            raise RuntimeError("first attempt fails")
        self.seen = list(self.input)
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.seen = inputs[0].seen
        self.next(self.end)

    @step
    def end(self) -> None:
        pass
