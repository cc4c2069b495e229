"""The client as Metaflow's own tests use it (issue 11, item 3): ``step.tasks()``,
``Step.id``, ``Step.created_at``/``finished_at``, ``Flow.id`` and the ``parent`` chain,
on real runs written to real store files."""

from __future__ import annotations

import asyncio
import gc
import os
import pickle
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

import asyncflow
from asyncflow import FlowSpec, NotFoundError, step
from asyncflow._client import Flow, Run, Step, Task


class ClientShapeFlow(FlowSpec):
    """start -> train (foreach of 3, each a little late) -> join -> end."""

    @step
    def start(self) -> None:
        self.items = [0, 1, 2]
        self.next(self.train, foreach="items")

    @step
    def train(self) -> None:
        time.sleep(0.02 * (1 + self.input))
        self.score = self.input * 10
        self.next(self.join)

    @step
    def join(self, inputs: list[ClientShapeFlow]) -> None:
        self.total = sum(i.score for i in inputs)
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


def latest(flow: Flow) -> Run:
    run = flow.latest_run
    assert run is not None
    return run


@pytest.fixture
def ran(store: str) -> Iterator[Flow]:
    """One succeeded run of ClientShapeFlow, tagged ``nightly``, opened with the client."""
    asyncio.run(ClientShapeFlow(store=store, tags=["nightly"], echo=False).run())
    with Flow("ClientShapeFlow", store) as flow:
        yield flow


def test_step_tasks_is_called_as_in_metaflow_and_returns_an_iterator_of_tasks(
    ran: Flow,
) -> None:
    train = latest(ran)["train"]
    found = train.tasks()
    assert iter(found) is found  # an iterator, as Metaflow's
    tasks = list(found)
    assert [t.index for t in tasks] == [0, 1, 2]
    assert all(isinstance(t, Task) for t in tasks)
    assert [t.data.score for t in train.tasks()] == [0, 10, 20]


def test_step_tasks_still_works_as_the_tuple_it_was(ran: Flow) -> None:
    train = latest(ran)["train"]
    assert isinstance(train.tasks, tuple)
    assert len(train.tasks) == 3
    assert train.tasks[1].data.score == 10
    assert list(train.tasks) == list(train)


def test_step_tasks_with_tags_keeps_the_tasks_only_when_the_run_carries_every_tag(
    ran: Flow,
) -> None:
    train = latest(ran)["train"]
    assert len(list(train.tasks("nightly"))) == 3
    assert list(train.tasks("nightly", "other")) == []
    assert list(train.tasks("other")) == []


def test_run_steps_is_called_as_in_metaflow_with_the_same_tag_rule(ran: Flow, store: str) -> None:
    run = latest(ran)
    assert run is not None
    found = run.steps()
    assert iter(found) is found
    assert [s.id for s in found] == ["start", "train", "join", "end"]
    assert [s.id for s in run.steps("nightly")] == ["start", "train", "join", "end"]
    assert list(run.steps("other")) == []

    async def main() -> tuple[list[str], list[str]]:
        run = await (await Flow.aopen("ClientShapeFlow", store)).alatest_run()
        assert run is not None
        return [s.id for s in await run.asteps("nightly")], [
            s.id for s in await run.asteps("nightly", "other")
        ]

    assert asyncio.run(main()) == (["start", "train", "join", "end"], [])


def test_step_tasks_survives_pickling(ran: Flow) -> None:
    tasks = latest(ran)["train"].tasks
    back = pickle.loads(pickle.dumps(tasks))
    assert list(back) == list(tasks)
    assert list(back("nightly")) == list(tasks)


def test_step_id_is_its_name_and_flow_id_is_the_flow_name(ran: Flow) -> None:
    run = latest(ran)
    assert ran.id == "ClientShapeFlow"
    assert [s.id for s in run] == ["start", "train", "join", "end"]
    assert run["join"].id == "join"


def test_step_created_and_finished_at_span_its_tasks(ran: Flow) -> None:
    run = latest(ran)
    train = run["train"]
    assert isinstance(train.created_at, datetime) and isinstance(train.finished_at, datetime)
    assert train.created_at == min(t.started_at for t in train)
    assert train.finished_at == max(t.finished_at for t in train)
    assert train.created_at < train.finished_at
    assert run["start"].finished_at <= train.created_at
    assert train.finished_at <= run["join"].created_at
    assert run.created_at <= run["start"].created_at
    assert run["end"].finished_at <= run.finished_at  # type: ignore[operator]


def test_the_parent_chain_goes_task_step_run_flow(ran: Flow) -> None:
    run = latest(ran)
    assert isinstance(run, Run)
    assert run.parent == ran and run.parent.id == "ClientShapeFlow"
    train = run["train"]
    assert train.parent == run
    task = train.tasks[2]
    assert task.parent is train  # reached through its step: the same object, no read
    assert task.parent.parent.parent == ran


def test_task_parent_reads_the_step_when_the_task_was_not_reached_through_it(
    ran: Flow,
) -> None:
    run = latest(ran)
    end = run.end_task
    found = end.parent
    assert isinstance(found, Step) and found.pathspec == f"ClientShapeFlow/{run.id}/end"
    assert found.parent == run
    task = pickle.loads(pickle.dumps(run["train"].tasks[1]))
    step_again = task.parent
    assert step_again.id == "train" and [t.index for t in step_again.tasks()] == [0, 1, 2]
    assert step_again.tasks[1] is task  # the task itself, so its cached values stay


def test_a_task_does_not_keep_its_step_alive(ran: Flow) -> None:
    task = latest(ran)["train"].tasks[0]
    gc.collect()
    assert task._step is not None and task._step() is None  # a weak reference only
    assert task.parent.id == "train"  # read again


def test_task_created_at_is_when_it_started(ran: Flow) -> None:
    task = latest(ran)["train"].tasks[0]
    assert task.created_at == task.started_at


def test_task_parent_of_a_deleted_run_is_a_not_found_error(ran: Flow, store: str) -> None:
    run = latest(ran)
    end = run.end_task
    asyncflow.gc(store, tag="nightly", protect=())
    with pytest.raises(NotFoundError, match="ClientShapeFlow"):
        end.parent  # noqa: B018


def test_async_twin_of_task_parent(ran: Flow, store: str) -> None:
    async def main() -> tuple[str, list[str]]:
        async with Flow.aopen("ClientShapeFlow", store) as flow:
            run = await flow.alatest_run()
            assert run is not None
            end = await run.aend_task()
            found = await end.aparent()
            return found.pathspec, [t.id for t in found.tasks()]

    pathspec, ids = asyncio.run(main())
    run = latest(ran)
    assert pathspec == f"ClientShapeFlow/{run.id}/end"
    assert ids == [run.end_task.id]


FLOW_FILE = """
from asyncflow import FlowSpec, step

class MetaShapeFlow(FlowSpec):
    @step
    def start(self):
        self.items = ["a", "b"]
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.got = self.input.upper()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.got = sorted(i.got for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    MetaShapeFlow()
"""


def test_a_metaflow_style_check_of_a_run_made_from_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(textwrap.dedent(FLOW_FILE))
    store = str(tmp_path / "runs.db")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(
        [sys.executable, "flow.py", "run", "--store", store],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    # As Metaflow's tests read a run: flow -> run -> step.tasks() -> task.data, and back up.
    flow = Flow("MetaShapeFlow", store)
    run = flow.latest_run
    assert run is not None and run.successful and run.finished
    assert run.parent.id == flow.id == "MetaShapeFlow"
    for s in run:
        assert s.parent == run
        for task in s.tasks():
            assert task.parent.id == s.id
            assert s.created_at <= task.started_at <= task.finished_at <= s.finished_at
    assert sorted(t.data.got for t in run["each"].tasks()) == ["A", "B"]
    assert run.end_task.parent.id == "end"
    assert run.data.got == ["A", "B"]
    flow.close()
