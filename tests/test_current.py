"""``current`` inside coroutine and plain steps, per concurrent task, and outside any step."""

from __future__ import annotations

import threading

import anyio
import pytest

from asyncflow import Run, current
from tests.flows.current_flows import FIELDS, CurrentFlow, snapshot


def outside() -> dict[str, object]:
    return {name: None for name in FIELDS} | {"is_running_flow": False}


@pytest.fixture
async def run(store: str) -> Run:
    return await CurrentFlow(store=store, echo=False).run(alpha=3)


@pytest.mark.anyio
async def test_current_in_every_task_names_that_task(run: Run) -> None:
    tasks = [task for step in run for task in step]
    assert len(tasks) == 1 + 4 + 4 + 1 + 1
    for task in tasks:
        info = task.data.info
        assert info == {
            "flow_name": "CurrentFlow",
            "run_id": run.id,
            "step_name": task.step_name,
            "task_id": task.id,
            "pathspec": task.pathspec,
            "retry_count": 0,
            "origin_run_id": None,
            "parameter_names": ("alpha",),
            "is_running_flow": True,
        }, task.pathspec
        assert isinstance(info["run_id"], str) and isinstance(info["task_id"], str)


@pytest.mark.anyio
async def test_concurrent_tasks_each_see_their_own_values(run: Run) -> None:
    for step, flag in (("abody", "same_after_await"), ("pbody", "same_after_sleep")):
        tasks = list(run[step])
        assert all(getattr(t.data, flag) for t in tasks), step
        assert [t.data.info["task_id"] for t in tasks] == [t.id for t in tasks]
        assert len({t.data.info["task_id"] for t in tasks}) == 4
    # the premise: the tasks of each step really overlapped
    for step in ("abody", "pbody"):
        spans = [(t.started_at, t.finished_at) for t in run[step]]
        assert max(s for s, _ in spans) < min(e for _, e in spans), step


@pytest.mark.anyio
async def test_outside_a_step_current_is_empty(store: str) -> None:
    assert snapshot() == outside()
    assert current.is_running_flow is False
    seen_during: list[dict[str, object]] = []
    seen_in_thread: list[dict[str, object]] = []

    async def watcher(done: anyio.Event) -> None:
        while not done.is_set():
            seen_during.append(snapshot())
            await anyio.sleep(0.01)

    done = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(watcher, done)
        await CurrentFlow(store=store, echo=False).run()
        thread = threading.Thread(target=lambda: seen_in_thread.append(snapshot()))
        thread.start()
        thread.join()
        done.set()

    assert len(seen_during) >= 3
    assert all(seen == outside() for seen in seen_during)  # a sibling task is not in a step
    assert seen_in_thread == [outside()]
    assert snapshot() == outside()  # nothing leaks out of the run
    assert "not in a step" in repr(current)
