"""The events of a run, as ``flow.stream()``, ``run.events()`` and ``run.aevents()`` give them.

Every event has ``seq`` (1, 2, 3 ... within its run, strictly increasing), ``at`` (a UTC
``datetime``), ``kind`` (``"run_started"`` ...), ``run_id`` and ``to_dict()`` (JSON-ready).
The classes are frozen dataclasses; match on them::

    async with flow.stream(alpha=0.1) as events:
        async for ev in events:
            match ev:
                case StepProgress(step=step, done=done, total=total):
                    print(f"{step} {done}/{total}")
                case RunFinished(status=status):
                    print(status)

A run's stream: ``RunStarted``; per task attempt a ``TaskStarted``, the ``LogLine``s it
prints, then a ``TaskRetrying`` (``@retry`` tries again) or its ``TaskFinished``;
``StepProgress`` for a foreach's body step; ``RunFinished`` last. Events of tasks running at
once interleave. The same stream is stored with the run (it travels in archives and is
deleted with the run by gc).
"""

from ._store._events import (
    Event,
    LogLine,
    RunFinished,
    RunStarted,
    StepProgress,
    TaskFinished,
    TaskRetrying,
    TaskStarted,
)

__all__ = [
    "Event",
    "LogLine",
    "RunFinished",
    "RunStarted",
    "StepProgress",
    "TaskFinished",
    "TaskRetrying",
    "TaskStarted",
]
