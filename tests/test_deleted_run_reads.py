"""A run deleted by gc after it was opened: every read that then finds nothing says the run
was deleted (NotFoundError), instead of blaming the run ("no artifact", "did not reach its
end step") or reading an empty log. Found by a README-only attacker with a notebook's open
Run while another process ran ``asyncflow gc``."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from asyncflow import FlowSpec, NotFoundError, Run, Task, step
from asyncflow._cli import main as asyncflow_cli

pytestmark = pytest.mark.anyio


class GoneFlow(FlowSpec):
    @step
    def start(self) -> None:
        self.items = [1, 2]
        self.next(self.work, foreach="items")

    @step
    def work(self) -> None:
        self.sq = self.input**2
        print("work", self.input)
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.total = sum(i.sq for i in inputs)
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


def _gc_all_but_last(store: str) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        assert asyncflow_cli(["gc", "--keep-last", "1", "--store", store]) == 0


READS: dict[str, Callable[[Run, Task], object]] = {
    "run.data": lambda run, task: run.data.total,
    "run.end_task": lambda run, task: run.end_task,
    "task.data": lambda run, task: task.data.sq,
    "task.stdout": lambda run, task: task.stdout,
    "task.stderr": lambda run, task: task.stderr,
    "list(task)": lambda run, task: list(task),
    "run['join']": lambda run, task: run["join"],
}


@pytest.mark.parametrize("what", list(READS))
async def test_reads_of_a_run_gc_deleted_say_so(tmp_path: Path, what: str) -> None:
    store = str(tmp_path / "g.db")
    for _ in range(2):
        await GoneFlow(store=store, echo=False).run()
    run = Run("GoneFlow/1", store=store)
    task = next(iter(run["work"]))
    _gc_all_but_last(store)
    with pytest.raises(NotFoundError, match=r"was deleted from the store .* by asyncflow gc"):
        READS[what](run, task)


async def test_a_kept_run_reads_as_before(tmp_path: Path) -> None:
    store = str(tmp_path / "g.db")
    for _ in range(2):
        await GoneFlow(store=store, echo=False).run()
    run = Run("GoneFlow/2", store=store)
    task = next(iter(run["work"]))
    _gc_all_but_last(store)
    assert run.data.total == 5 and task.stdout.startswith("work") and task.stderr == ""
    assert Task(run["end"].task.pathspec, store=store).stdout == ""  # empty, and still there
