"""Flows for the tidy tests (tags, gc, stats).

``SharedFlow`` sets one value every run shares (stored once) and one of its own per run,
and may wait in its middle step at a :class:`Gate` (found in :data:`GATES` under the run's
``key`` parameter), so a test can act while the run is live; its middle step fails while
``key`` is in :data:`FAILING`, so a run can fail and then be resumed.

Run as a script (``python tests/flows/tidy.py run ...``) with ``$TIDY_HANG_MARKER`` set, the
middle step writes that file and then waits (on the event loop) until the process is killed.
"""

from __future__ import annotations

import os

import anyio
import numpy as np

from asyncflow import FlowSpec, Parameter, step

SHARED = "a value every run of SharedFlow sets, stored once"


class Gate:
    """A run waits at it: ``entered`` is set when it arrives; it goes on after ``release``."""

    def __init__(self) -> None:
        self.entered = anyio.Event()
        self.release = anyio.Event()

    async def wait(self) -> None:
        self.entered.set()
        await self.release.wait()


GATES: dict[str, Gate] = {}
FAILING: set[str] = set()


def own_value(key: str, size: int) -> np.ndarray:
    """The array a run with ``key`` stores (different keys, different bytes)."""
    return np.arange(size, dtype=np.float64) + sum(map(ord, key))


class SharedFlow(FlowSpec):
    """start -> middle -> end; ``middle`` may wait at a gate, or fail."""

    key = Parameter("key", default="")
    size = Parameter("size", default=1000)

    @step
    def start(self) -> None:
        self.shared = SHARED
        self.own = own_value(self.key, self.size)
        self.next(self.middle)

    @step
    async def middle(self) -> None:
        gate = GATES.get(self.key)
        if gate is not None:
            await gate.wait()
        marker = os.environ.get("TIDY_HANG_MARKER")
        if marker:
            with open(marker, "w") as fh:
                fh.write(str(os.getpid()))
            await anyio.sleep(600)
        if self.key in FAILING:
            raise RuntimeError(f"planned failure of {self.key!r}")
        # Also shared, but stored only when this task commits (after the gate).
        self.late = SHARED + " (late)"
        self.total = float(self.own.sum())
        self.next(self.end)

    @step
    def end(self) -> None:
        self.done = True


if __name__ == "__main__":
    SharedFlow.main()
