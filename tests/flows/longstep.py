"""A flow whose one real step outlasts the run's lease window (tests/test_lease.py).

Run as a script: ``python tests/flows/longstep.py run --store S --marker M --seconds N
--mode gil|sleep``. The start step writes ``M`` and then, in ``gil`` mode, calls libc's
``sleep`` through ``ctypes.PyDLL``, which keeps the GIL for the whole call, so no other
thread of the process (the store's writer included) runs for ``N`` seconds; in ``sleep``
mode it calls ``time.sleep``, which lets other threads run.
"""

from __future__ import annotations

import ctypes
import time

from asyncflow import FlowSpec, Parameter, step


class LongStepFlow(FlowSpec):
    """start (long) -> end."""

    marker = Parameter("marker", default="")
    seconds = Parameter("seconds", default=1)
    mode = Parameter("mode", default="gil")

    @step
    def start(self) -> None:
        if self.marker:
            with open(self.marker, "w") as fh:
                fh.write("started")
        if self.mode == "gil":
            ctypes.PyDLL(None).sleep(int(self.seconds))
        else:
            time.sleep(self.seconds)
        self.slept = self.seconds
        self.next(self.end)

    @step
    def end(self) -> None:
        self.done = True


if __name__ == "__main__":
    LongStepFlow.main()
