"""Readers of a run's events, past their run: a run gc deleted, a run whose process is gone,
and the file handles readers leave behind (issue 12)."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

import asyncflow
from asyncflow import Flow, NotFoundError, Runner, events
from tests.flows.event_flows import Wide

FLOWS = Path(__file__).parent / "flows" / "event_flows.py"

pytestmark = pytest.mark.anyio

GC_SAYS = r"run Wide/1 was deleted from the store .* by asyncflow gc on .* its runs, newest first"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # a Runner's events are read on its asyncio loop


async def test_reading_a_run_gc_deleted_as_its_flows_only_run_says_gc_deleted_it(
    store: str,
) -> None:
    await Wide(store=store, echo=False).run(n=2)
    await asyncflow.agc(store, older_than=0)
    with pytest.raises(NotFoundError, match=GC_SAYS):
        Flow("Wide", store)["1"]
    with pytest.raises(NotFoundError, match=GC_SAYS):
        await (await Flow.aopen("Wide", store)).aget("1")
    # A flow that never ran is still unknown.
    with pytest.raises(NotFoundError, match="there is no flow 'Other'"):
        Flow("Other", store)


async def test_the_events_of_a_run_gc_deleted_raise_not_found_not_nothing(store: str) -> None:
    async with Runner(store=store) as runner:
        handle = await runner.start(Wide(store=store, echo=False), n=2)
        run = await handle.wait()
        assert len(run.events()) > 4
        await asyncflow.agc(store, older_than=0)
        later = runner.get(handle.run_id)
        with pytest.raises(NotFoundError, match=GC_SAYS):
            [ev async for ev in later.events()]
        with pytest.raises(NotFoundError, match=GC_SAYS):
            [ev async for ev in run.aevents()]
        with pytest.raises(NotFoundError, match=GC_SAYS):
            [ev async for ev in run.aevents(follow=True)]
        with pytest.raises(NotFoundError, match=GC_SAYS):
            run.events()


def _join_started(store: str) -> bool:
    # SlowFlow's join has started (its TaskStarted is stored): the run then hangs there.
    try:
        runs = Flow("SlowFlow", store=store).runs()
    except Exception:
        return False
    return bool(runs) and any(
        isinstance(ev, events.TaskStarted) and ev.step == "join" for ev in runs[0].events()
    )


def crash_slow_flow(store: str) -> None:
    """Leave in ``store`` a SlowFlow run whose process was SIGKILLed while it hung in its
    join step (run 1 of a new store)."""
    proc = subprocess.Popen(
        [sys.executable, str(FLOWS), "run", "--store", store, "--n", "2", "--pause", "0",
         "--hang", "600"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (os.path.exists(store) and _join_started(store)):
            assert time.monotonic() < deadline, "the run never reached its join"
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture
def crashed_run(store: str) -> Iterator[str]:
    crash_slow_flow(store)
    yield store


@pytest.mark.parametrize(
    "command",
    [["events", "SlowFlow/1"], ["events", "SlowFlow/1", "--json"], ["logs", "SlowFlow/1"]],
)
def test_following_a_crashed_run_from_the_shell_says_it_crashed_and_exits_1(
    crashed_run: str, command: list[str]
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "asyncflow", *command, "--follow", "--store", crashed_run],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("asyncflow: run SlowFlow/1 ended without its RunFinished: ")
    assert "crashed" in lines[0] and "Traceback" not in done.stderr
    script, path = shlex.quote(str(FLOWS)), shlex.quote(crashed_run)
    resume = f"python {script} resume --origin-run-id 1 --store {path}"
    assert lines[0].endswith(f"Resume it with `{resume}`"), lines[0]
    if command[0] == "events":
        assert done.stdout.strip(), "the events before the crash are printed"


async def test_a_follow_of_a_crashed_run_ends_and_the_run_then_reads_as_crashed(
    crashed_run: str,
) -> None:
    run = Flow("SlowFlow", store=crashed_run)["1"]
    with anyio.fail_after(30):
        got = [ev async for ev in run.aevents(follow=True)]
    assert got and not isinstance(got[-1], events.RunFinished)
    assert (await run.arefresh()).status == "crashed"


DROPPED_FOLLOW = """
import asyncio, sys
from asyncflow import Flow
from tests.flows.event_flows import Wide

async def main():
    run = await Wide(store=sys.argv[1], echo=False).run(n=3)
    ev = await anext(Flow("Wide", sys.argv[1])[run.id].aevents(follow=True))
    print(ev.kind)  # the iterator is dropped here, as asyncio.run shuts down

asyncio.run(main())
"""


def test_a_follow_dropped_as_asyncio_run_returns_shuts_down_quietly(store: str) -> None:
    for _ in range(3):
        done = subprocess.run(
            [sys.executable, "-c", DROPPED_FOLLOW, store],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=Path(__file__).parents[1],
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == "run_started\n"
        assert done.stderr == "", done.stderr
