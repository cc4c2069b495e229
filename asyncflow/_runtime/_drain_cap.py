"""How many threads of a run drain plain tasks at once (:class:`DrainCap`).

Quick plain tasks hold the GIL: more threads draining them only queue for it and for the
locks each task takes (16 threads made a 10,000-wide foreach of trivial tasks up to 2-3x
slower than 2, with 3-10x the context switches). Tasks that sleep, wait on I/O or compute
outside the GIL (numpy) want many threads. So the cap is :data:`NARROW_DRAINS` to start, and
while plain work waits for it the scheduler's supervisor ticks it every
:data:`TICK_SECONDS`:

* narrow, it opens to ``max_workers`` when the drains completed nothing in a tick (they are
  stuck: a blocking task never holds up the others for longer), or, over a
  :data:`NARROW_WINDOW_SECONDS` window, when their tasks used less than :data:`IDLE_SHARE`
  of a CPU (the tasks sleep or wait) or each drain kept a CPU busy of its own and the
  machine has CPUs to spare (:func:`drain_cap_move`);
* wide, it narrows again after a :data:`WIDE_WINDOW_SECONDS` window in which the wide
  drains completed tasks no faster than :data:`WIDE_GAIN` x the rate of the narrow ones
  before it opened (more threads did not help), or after :data:`WIDE_HOLD_SECONDS` wide,
  to look again (tasks that still sleep open it again at the next tick). A drain thread
  beyond a narrowed cap leaves after its task.

The CPU counted is the drain threads' own while they run tasks (``time.thread_time``), not
the process's: the writer's cost per transaction, which grows when tasks trickle in one at a
time, made two drains of 1 ms sleeps look 0.8 CPUs busy.
"""

from __future__ import annotations

import os

__all__ = [
    "IDLE_SHARE",
    "NARROW_DRAINS",
    "NARROW_WINDOW_SECONDS",
    "TICK_SECONDS",
    "WIDE_GAIN",
    "WIDE_HOLD_SECONDS",
    "WIDE_WINDOW_SECONDS",
    "DrainCap",
    "drain_cap_move",
]

NARROW_DRAINS = 2  # threads draining plain tasks while that keeps them busy
TICK_SECONDS = 0.002  # how often the cap is reconsidered while plain work waits for it
IDLE_SHARE = 0.3  # the drains' CPU time / wall time below which the cap opens
NARROW_WINDOW_SECONDS = 0.01  # a narrow cap's CPU share is measured over this long
WIDE_WINDOW_SECONDS = 0.03  # a wide cap's completion rate is measured over this long
WIDE_GAIN = 1.25  # a wide cap stays while it completes tasks this much faster than narrow
WIDE_HOLD_SECONDS = 0.25  # ... and is tried narrow again after this long at about one CPU

_CPUS = os.cpu_count() or 1


def drain_cap_move(drains: int, busy: float, progressed: bool, cpus: int) -> bool:
    """Whether a tick of the narrow cap opens it.

    ``drains``: threads draining; ``busy``: their tasks' CPU time over the tick's wall time;
    ``progressed``: some task completed in the tick; ``cpus``: the machine's CPUs.
    """
    if drains < NARROW_DRAINS:
        return False  # the cap is not what holds work back
    if not progressed or busy < IDLE_SHARE:
        return True  # stuck, or waiting (sleep, I/O): more threads overlap them
    # Each drain has a CPU to itself (its steps release the GIL to compute): add more.
    return busy >= drains - 0.25 and cpus > drains


class DrainCap:
    """The drain cap of one run; the scheduler calls it under its lock."""

    __slots__ = ("_last", "_narrow_rate", "_opened", "_window", "cap", "narrow", "wide")

    def __init__(self, max_workers: int) -> None:
        self.narrow = min(max_workers, NARROW_DRAINS)
        self.wide = max_workers
        self.cap = self.narrow  # threads that may drain now
        self._last: tuple[float, float, int] | None = None  # last tick: time, CPU, completed
        self._window: tuple[float, float, int] | None = None  # the current window's start
        self._narrow_rate = 0.0  # completions per second of the narrow cap before it opened
        self._opened = 0.0  # when the cap opened

    @property
    def fixed(self) -> bool:
        """True if there is nothing to decide (``max_workers`` is at most the narrow cap)."""
        return self.narrow >= self.wide

    def pause(self) -> None:
        """No plain work waits: the next tick starts measuring afresh."""
        self._last = self._window = None

    def tick(self, now: float, cpu: float, completed: int, drains: int) -> bool:
        """Reconsider the cap at monotonic time ``now``, with ``cpu`` seconds of CPU spent by
        drain threads running tasks and ``completed`` tasks completed so far in the run;
        True if it opened."""
        last = self._last
        if last is None:
            self._last = self._window = (now, cpu, completed)
            return False
        wall = now - last[0]
        if wall < TICK_SECONDS:
            return False
        self._last = (now, cpu, completed)
        if self.cap == self.narrow:
            # Stuck is seen in one tick; the CPU share over a NARROW_WINDOW_SECONDS window
            # (one tick's is too noisy: quick tasks looked idle in one tick out of ten).
            progressed = completed > last[2]
            window = self._window or last
            wall = now - window[0]
            if progressed and wall < NARROW_WINDOW_SECONDS:
                return False
            self._window = (now, cpu, completed)
            if not drain_cap_move(drains, (cpu - window[1]) / wall, progressed, _CPUS):
                return False
            self.cap = self.wide
            self._narrow_rate = (completed - window[2]) / wall
            self._opened = now
            return True
        window = self._window or last
        wall = now - window[0]
        if wall < WIDE_WINDOW_SECONDS:
            return False
        self._window = (now, cpu, completed)
        rate = (completed - window[2]) / wall
        if completed > window[2] and (
            rate < self._narrow_rate * WIDE_GAIN or now - self._opened >= WIDE_HOLD_SECONDS
        ):
            self.cap = self.narrow  # drains beyond it leave after their task
        return False
