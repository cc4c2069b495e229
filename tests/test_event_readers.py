"""Readers of a run's events, past their run: a run gc deleted, a run whose process is gone,
and the file handles readers leave behind (issue 12)."""

from __future__ import annotations

import pytest

import asyncflow
from asyncflow import Flow, NotFoundError, Runner
from tests.flows.event_flows import Wide

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
