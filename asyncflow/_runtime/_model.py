"""The records the scheduler passes around: a task to run and a task's outcome."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._spec._flowbase import ForeachFrame

__all__ = ["TaskOutcome", "TaskSpec", "path_text"]


def path_text(path: tuple[int, ...]) -> str:
    """The stored form of a foreach index path: ``""``, ``"3"``, ``"3.0"``."""
    return ".".join(map(str, path))


@dataclass(slots=True)
class TaskSpec:
    """A task ready to run.

    ``base`` is the name -> sha mapping the task starts from: its parent's complete mapping
    (shared, never mutated) or, for a join, the run's parameters. ``pass_index`` counts the
    earlier tasks of the same step and foreach path in the run: 0 but in a loop.
    """

    task_id: int
    step: str
    path: tuple[int, ...]
    stack: tuple[ForeachFrame, ...]
    base: dict[str, bytes]
    inputs: list[TaskOutcome] | None = None
    pass_index: int = 0  # the how-manieth task of its step and foreach path (a loop's pass)


@dataclass(slots=True)
class TaskOutcome:
    """What a finished task hands to the scheduler."""

    spec: TaskSpec
    refs: dict[str, bytes]
    targets: tuple[str, ...] = ()
    foreach_items: list[Any] | None = None
    error: BaseException | None = None
    # Set when the task is a clone of a resumed run's task (that task's id): no code ran.
    origin_task_id: int | None = None

    @property
    def step(self) -> str:
        """The step this task ran."""
        return self.spec.step
