"""``Runner`` and ``RunHandle``: runs started in the background of an app, watched and steered,
in real stores.

Promises: start returns once the run is recorded (bad parameters raise there); every reader
of a handle sees the whole stream; a reader that never reads does not hold the run; cancel
records ``cancelled`` and the run resumes; ``max_runs`` bounds the runs at once; leaving the
block waits, cancelling it cancels; one failing run disturbs no other; get() of an unknown id
is a NotFoundError.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from typing import Any

import anyio
import pytest

import asyncflow
from asyncflow import Flow, NotFoundError, ParameterError, Runner, StepFailed, UsageError, events
from tests.flows.event_flows import Retried, Wide

pytestmark = pytest.mark.anyio


def spans(store: str) -> list[tuple[float, float]]:
    with contextlib.closing(sqlite3.connect(store)) as conn:
        rows = conn.execute("SELECT created_at, finished_at FROM runs ORDER BY id").fetchall()
    return [(float(a), float(b)) for a, b in rows]


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    points = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    best = now = 0
    for _, step in points:  # an end sorts before a start at the same instant
        now += step
        best = max(best, now)
    return best


async def read_all(stream: Any) -> list[events.Event]:
    return [ev async for ev in stream]


async def test_start_returns_a_recorded_running_handle_and_wait_gives_the_run(store: str) -> None:
    async with Runner(store=store) as runner:
        handle = await runner.start(Wide, n=5, pause=0.2)
        assert handle.run_id.isdigit()
        assert handle.pathspec == f"Wide/{handle.run_id}"
        assert handle.status == "running"
        assert Flow("Wide", store=store)[handle.run_id].status == "running"  # recorded
        assert runner.get(handle.run_id) is handle
        assert runner.get(int(handle.run_id)) is handle
        run = await handle.wait()
        assert handle.status == "succeeded" and run.status == "succeeded"
        assert run.data.total == 20


async def test_a_bad_parameter_raises_from_start_and_records_nothing(store: str) -> None:
    async with Runner(store=store) as runner:
        with pytest.raises(ParameterError, match="nope"):
            await runner.start(Wide, nope=1)
        ok = await runner.start(Wide, n=2)  # the runner goes on
        await ok.wait()
    assert [r.id for r in Flow("Wide", store=store).runs()] == [ok.run_id]


async def test_two_readers_of_one_handle_see_the_same_stream(store: str) -> None:
    async with Runner(store=store) as runner:
        handle = await runner.start(Wide(store=store, echo=False), n=40)
        seen: dict[str, list[events.Event]] = {}

        async def read(name: str, pause: float) -> None:
            out = seen.setdefault(name, [])
            async for ev in handle.events():
                out.append(ev)
                await anyio.sleep(pause)

        async with anyio.create_task_group() as tg:
            tg.start_soon(read, "fast", 0)
            tg.start_soon(read, "slow", 0.002)
        late = await read_all(handle.events())  # after the end: the same, from the store
    assert seen["fast"] == seen["slow"] == late
    assert [ev.seq for ev in late] == list(range(1, len(late) + 1))
    assert isinstance(late[0], events.RunStarted) and isinstance(late[-1], events.RunFinished)
    assert late[-1].status == "succeeded"
    assert late == (await handle.wait()).events()


async def test_events_after_a_seq_pick_up_where_a_reader_was_live_and_stored(
    store: str,
) -> None:
    async with Runner(store=store) as runner:
        handle = await runner.start(Wide(store=store, echo=False), n=20, pause=0.01)
        live = await read_all(handle.events(after=5))  # joined while the run goes on
        run = await handle.wait()
        ended = await read_all(handle.events(after=5))  # from the store
    whole = run.events()
    assert live == ended == whole[5:] == run.events(after=5)
    assert [ev async for ev in run.aevents(after=5)] == whole[5:]
    assert [ev async for ev in run.aevents(after=len(whole))] == []
    assert run.events(after=len(whole) + 10) == []
    for bad in (-1, True, "3", 2.0):
        with pytest.raises(UsageError, match="after is the seq of the last event"):
            handle.events(after=bad)
        with pytest.raises(UsageError, match="after is the seq"):
            run.events(after=bad)
        with pytest.raises(UsageError, match="after is the seq"):
            run.aevents(after=bad)


async def test_a_never_reading_reader_does_not_block_wait(store: str) -> None:
    async with Runner(store=store) as runner:
        handle = await runner.start(Wide(store=store, echo=False), n=300)
        idle = handle.events()  # never read while the run goes on
        with anyio.fail_after(60):
            run = await handle.wait()
        assert run.status == "succeeded"
        assert handle._hub is None  # an ended handle holds no stream: readers hold it
        late = await read_all(idle)
    assert late == run.events() and len(late) > 600


async def test_cancel_records_cancelled_and_resume_completes_the_run(store: str) -> None:
    async with Runner(store=store) as runner:
        handle = await runner.start(Wide(store=store, echo=False), n=40, pause=0.2)
        async for ev in handle.events():
            if isinstance(ev, events.TaskFinished) and ev.step == "work":
                break
        await handle.cancel()
        assert handle.status == "cancelled"
        # Recorded before cancel() returned.
        assert Flow("Wide", store=store)[handle.run_id].status == "cancelled"
        stored = (await handle.wait()).events()
        assert stored[-1].status == "cancelled"
        await handle.cancel()  # again: nothing happens
        resumed = await runner.resume(Wide(store=store, echo=False), handle.run_id)
        run = await resumed.wait()
    assert resumed.status == "succeeded" and run.origin_run_id == handle.run_id
    assert run.data.total == 40 * 39


async def test_max_runs_bounds_the_runs_going_on_at_once(store: str) -> None:
    async with Runner(store=store, max_runs=2) as runner:
        flow = Wide(store=store, echo=False)
        handles = [await runner.start(flow, n=4, pause=0.03) for _ in range(6)]
        for handle in handles:
            await handle.wait()
    recorded = spans(store)
    assert len(recorded) == 6
    assert most_at_once(recorded) == 2


async def test_without_max_runs_runs_overlap(store: str) -> None:
    # The measure above can see overlap: unbounded, the six runs go on together.
    async with Runner(store=store) as runner:
        flow = Wide(store=store, echo=False)
        for _ in range(6):
            await runner.start(flow, n=2, pause=0.3)
    assert most_at_once(spans(store)) > 2


async def test_leaving_the_block_waits_for_the_runs_started_in_it(store: str) -> None:
    async with Runner(store=store) as runner:
        handles = [await runner.start(Wide(store=store, echo=False), n=6, pause=0.5)]
        handles.append(await runner.start(Wide(store=store, echo=False), n=3, pause=0.3))
    assert [h.status for h in handles] == ["succeeded", "succeeded"]
    assert {r.status for r in Flow("Wide", store=store).runs()} == {"succeeded"}


async def test_cancelling_the_block_cancels_its_runs_and_records_them(store: str) -> None:
    handles = []
    with anyio.CancelScope() as scope:
        async with Runner(store=store) as runner:
            for _ in range(2):
                handles.append(await runner.start(Wide(store=store, echo=False), n=2, pause=5))
            await anyio.sleep(0.2)
            scope.cancel()
            await anyio.sleep(30)  # never reached
    assert scope.cancelled_caught
    assert [h.status for h in handles] == ["cancelled", "cancelled"]
    assert {r.status for r in Flow("Wide", store=store).runs()} == {"cancelled"}


async def test_an_error_in_the_block_cancels_its_runs_and_goes_on_unwrapped(store: str) -> None:
    with pytest.raises(KeyError, match="boom"):
        async with Runner(store=store) as runner:
            handle = await runner.start(Wide(store=store, echo=False), n=50, pause=0.1)
            raise KeyError("boom")
    assert handle.status == "cancelled"
    assert Flow("Wide", store=store)[handle.run_id].status == "cancelled"


async def test_a_failing_run_raises_stepfailed_from_wait_and_spares_its_sibling(
    store: str, tmp_path: Any
) -> None:
    async with Runner(store=store) as runner:
        sibling = await runner.start(Wide(store=store, echo=False), n=2, pause=1.0)
        failing = await runner.start(Retried(store=store, echo=False), marker=str(tmp_path / "m"))
        with pytest.raises(StepFailed, match="doomed") as caught:
            await failing.wait()
        assert failing.status == "failed"
        assert caught.value.run.status == "failed"
        assert isinstance(caught.value.__cause__, ValueError)
        with pytest.raises(StepFailed):  # every waiter sees it
            await failing.wait()
        assert sibling.status == "running"  # untouched by its sibling's failure
        run = await sibling.wait()
        assert run.status == "succeeded" and sibling.status == "succeeded"
        later = await runner.start(Wide(store=store, echo=False), n=2)  # the runner goes on
        assert (await later.wait()).status == "succeeded"


async def test_get_of_an_unknown_id_is_a_not_found_error(store: str) -> None:
    async with Runner(store=store) as runner:
        with pytest.raises(NotFoundError, match=r"has no run '7'.*newest first: none\)"):
            runner.get("7")
        handle = await runner.start(Wide(store=store, echo=False), n=1)
        with pytest.raises(NotFoundError, match=f"newest first: {handle.run_id}\\)"):
            runner.get("999")
        with pytest.raises(KeyError):  # NotFoundError is a KeyError too
            runner.get(999)


async def test_get_keeps_every_running_run_and_the_last_ended_ones(store: str) -> None:
    async with Runner(store=store) as runner:
        runner._keep_ended = 2  # KEEP_ENDED (1,000), made small
        long = await runner.start(Wide(store=store, echo=False), n=2, pause=1.0)
        ended = []
        for _ in range(4):
            handle = await runner.start(Wide(store=store, echo=False), n=1)
            await handle.wait()
            ended.append(handle.run_id)
        assert runner.get(long.run_id) is long  # going on: kept however many ended since
        assert [runner.get(i).status for i in ended[2:]] == ["succeeded"] * 2
        for gone in ended[:2]:
            with pytest.raises(NotFoundError, match="ended long ago"):
                runner.get(gone)
        await long.wait()
        with pytest.raises(NotFoundError):
            runner.get(ended[2])  # pushed out by the long run's end
        assert runner.get(long.run_id) is long


async def test_a_runner_is_used_inside_its_block_only(store: str) -> None:
    runner = Runner(store=store)
    with pytest.raises(UsageError, match="block is not open"):
        await runner.start(Wide)
    async with runner:
        pass
    with pytest.raises(UsageError, match="block is not open"):
        await runner.start(Wide)
    with pytest.raises(UsageError, match="entered already"):
        async with runner:
            pass


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_max_runs_must_be_a_positive_whole_number(store: str, bad: Any) -> None:
    with pytest.raises(UsageError, match="max_runs must be a positive whole number"):
        Runner(store=store, max_runs=bad)


async def test_start_refuses_a_non_flow_and_a_flow_of_another_store(
    store: str, tmp_path: Any
) -> None:
    async with Runner(store=store) as runner:
        with pytest.raises(UsageError, match="take a flow class"):
            await runner.start(object)  # type: ignore[arg-type]
        with pytest.raises(UsageError, match="not in the runner's store"):
            await runner.start(Wide(store=str(tmp_path / "other.db")))


async def test_cancelling_a_start_waiting_for_a_slot_starts_nothing(store: str) -> None:
    async with Runner(store=store, max_runs=1) as runner:
        first = await runner.start(Wide(store=store, echo=False), n=2, pause=1.0)
        with anyio.move_on_after(0.1) as waited:
            await runner.start(Wide(store=store, echo=False), n=1)
        assert waited.cancelled_caught
        await first.wait()
    assert [r.id for r in Flow("Wide", store=store).runs()] == [first.run_id]


def test_runner_and_runhandle_are_public() -> None:
    assert asyncflow.Runner is Runner
    assert "Runner" in asyncflow.__all__ and "RunHandle" in asyncflow.__all__


# --- the README -------------------------------------------------------------------------------


def test_the_readme_runner_snippet_runs_and_prints_what_it_says(tmp_path: Any) -> None:
    from tests.test_examples import EXAMPLES, block_with, run_python

    snippet = block_with("async with Runner(store=")
    path = os.pathsep.join([str(EXAMPLES), str(EXAMPLES.parent)])  # this checkout's asyncflow
    env = {"PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1"}
    proc = run_python(tmp_path, "-c", snippet, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if not line.startswith("[")]
    assert lines[0] == "TrainFlow/1 running"
    assert lines[-4:] == ["train 4/4", "succeeded succeeded", "cancelled True", "succeeded"]
    with Flow("TrainFlow", store=str(tmp_path / "runs.db")) as flow:
        assert [r.status for r in flow.runs()] == ["succeeded", "cancelled", "succeeded"]


def test_the_readme_web_service_blocks_are_the_example() -> None:
    from tests.test_examples import EXAMPLES, python_blocks

    source = (EXAMPLES / "web_service.py").read_text(encoding="utf-8")
    blocks = [b for b in python_blocks() if "def lifespan" in b or "text/event-stream" in b]
    assert len(blocks) == 2
    for block in blocks:
        assert block in source
