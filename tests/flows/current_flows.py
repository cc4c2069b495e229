"""Flows that record what ``current`` says, in coroutine and plain steps."""

from __future__ import annotations

import time
from typing import Any

import anyio

from asyncflow import FlowSpec, Parameter, current, step

FIELDS = (
    "flow_name",
    "run_id",
    "step_name",
    "task_id",
    "pathspec",
    "retry_count",
    "origin_run_id",
    "parameter_names",
    "is_running_flow",
)


def snapshot() -> dict[str, Any]:
    """Every field of ``current``, now."""
    return {name: getattr(current, name) for name in FIELDS}


class CurrentFlow(FlowSpec):
    """Concurrent foreach tasks read ``current`` before and after they yield (or sleep)."""

    alpha = Parameter("alpha", default=1)

    @step
    async def start(self) -> None:
        self.info = snapshot()
        self.items = [0, 1, 2, 3]
        self.next(self.abody, foreach="items")

    @step
    async def abody(self) -> None:
        before = snapshot()
        await anyio.sleep(0.02 * (4 - self.index))  # the tasks interleave on the loop
        self.info = snapshot()
        self.same_after_await = before == self.info
        self.next(self.pbody)

    @step
    def pbody(self) -> None:
        before = snapshot()
        time.sleep(0.15)  # the threads run at the same time
        self.info = snapshot()
        self.same_after_sleep = before == self.info
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.info = snapshot()
        self.next(self.end)

    @step
    async def end(self) -> None:
        self.info = snapshot()
