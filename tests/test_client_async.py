"""The client, awaitable twins: each gives what its sync form gives, without blocking the loop."""

from __future__ import annotations

import inspect
import os
import pickle
import time
from pathlib import Path

import anyio
import numpy as np
import pytest

from asyncflow import (
    ArtifactNotFoundError,
    NotFoundError,
    StoreError,
    StoreFormatError,
    UntrustedArtifactError,
)
from asyncflow._client import DataArtifact, Flow, Run, Step, Task, alist_flows

from ._storefixture import T0, Counted, T, execute, sha_of, write_run, writer
from .test_client import build_store

pytestmark = pytest.mark.anyio


@pytest.fixture
def path(store: str) -> str:
    build_store(store)
    return store


@pytest.fixture
async def flow(path: str) -> Flow:
    return await Flow.aopen("TrainFlow", path)


def no_sync_connection(flow: Flow) -> bool:
    """True if no sync (loop-blocking) connection was ever opened for this flow."""
    return flow._handle._conn is None


# --- Flow -------------------------------------------------------------------------------------


async def test_aopen(flow: Flow, path: str) -> None:
    assert flow == Flow("TrainFlow", path)
    assert flow.store == os.path.abspath(path)
    assert repr(flow) == "Flow('TrainFlow')"


async def test_aopen_errors(path: str, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="OtherFlow, TrainFlow"):
        await Flow.aopen("NoSuchFlow", path)
    with pytest.raises(StoreError, match=r"absent\.db") as info:
        await Flow.aopen("TrainFlow", tmp_path / "absent.db")
    assert not isinstance(info.value, StoreFormatError)
    (tmp_path / "junk.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreFormatError):
        await Flow.aopen("TrainFlow", tmp_path / "junk.db")


async def test_alist_flows(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert await alist_flows(path) == ["OtherFlow", "TrainFlow"]
    monkeypatch.setenv("ASYNCFLOW_STORE", path)
    assert await alist_flows() == ["OtherFlow", "TrainFlow"]
    assert (await Flow.aopen("OtherFlow")).store == os.path.abspath(path)


async def test_aruns(flow: Flow) -> None:
    assert [r.id for r in await flow.aruns()] == ["4", "2", "1"]
    assert [r.id for r in await flow.aruns(tag="nightly")] == ["2", "1"]
    assert [r.id for r in await flow.aruns("nightly", "exp")] == ["2"]
    assert [r.id for r in await flow.aruns(limit=1)] == ["4"]
    assert no_sync_connection(flow)


async def test_alatest(flow: Flow, path: str) -> None:
    latest = await flow.alatest_run()
    ok = await flow.alatest_successful_run()
    assert latest is not None and latest.id == "4"
    assert ok is not None and ok.id == "1"
    write_run(path, "Lonely", [T("start")], status="failed")
    assert await (await Flow.aopen("Lonely", path)).alatest_successful_run() is None
    assert no_sync_connection(flow)


async def test_aget_and_acontains(flow: Flow) -> None:
    assert (await flow.aget("1")) == (await flow.aget(1))
    assert (await flow.aget(2)).status == "failed"
    assert await flow.acontains(1) and await flow.acontains("4")
    assert not await flow.acontains(3) and not await flow.acontains("x")
    with pytest.raises(NotFoundError, match="4, 2, 1"):
        await flow.aget(99)
    with pytest.raises(NotFoundError, match="not a run id"):
        await flow.aget("latest")
    assert no_sync_connection(flow)


# --- Run --------------------------------------------------------------------------------------


async def test_run_twins(flow: Flow) -> None:
    run = await flow.aget(1)
    assert await run.aparameters() == {"alpha": 0.1, "config": {"k": 1}}
    assert [s.name for s in await run.asteps()] == ["start", "train", "join", "end"]
    assert await run.acontains("train") and not await run.acontains("nope")
    step = await run.astep("train")
    assert [t.index for t in step] == list(range(12))
    end = await run.aend_task()
    assert end.step_name == "end"
    assert await run.adata("total") == 660
    assert await run.anames() == ["alpha", "arr", "obj", "pair", "total"]
    art = await run.aartifact("total")
    assert isinstance(art, DataArtifact) and await art.adata() == 660
    assert no_sync_connection(flow)


async def test_run_twins_errors(flow: Flow) -> None:
    run = await flow.aget(2)
    with pytest.raises(NotFoundError, match="no step 'nope'"):
        await run.astep("nope")
    with pytest.raises(NotFoundError, match="has no finished task"):
        await run.astep("join")
    with pytest.raises(AttributeError, match="did not reach its end step") as info:
        await run.adata("total")
    assert isinstance(info.value, ArtifactNotFoundError)
    with pytest.raises(ArtifactNotFoundError):
        await run.aend_task()
    with pytest.raises(KeyError):
        await (await flow.aget(1)).adata("nope")


async def test_arefresh(flow: Flow, path: str) -> None:
    run = await flow.aget(4)
    execute(path, "UPDATE runs SET status = 'failed', finished_at = ? WHERE id = 4", [T0 + 9])
    fresh = await run.arefresh()
    assert (run.status, fresh.status) == ("running", "failed")
    execute(path, "DELETE FROM runs WHERE id = 4")
    with pytest.raises(NotFoundError):
        await run.arefresh()


# --- Step and Task ----------------------------------------------------------------------------


async def test_step_twins(flow: Flow) -> None:
    step = await (await flow.aget(1)).astep("train")
    assert await step.adata("score") == 0
    assert await step.anames() == ["alpha", "items", "score"]
    assert (await step.aartifact("score")).name == "score"
    with pytest.raises(ArtifactNotFoundError, match="'nope'"):
        await step.adata("nope")


async def test_task_twins(flow: Flow) -> None:
    end = (await (await flow.aget(1)).astep("end")).task
    assert await end.anames() == ["alpha", "arr", "obj", "pair", "total"]
    assert await end.acontains("total") and not await end.acontains("nope")
    assert [a.name for a in await end.aartifacts()] == await end.anames()
    assert await end.adata("pair") == (1, 2)
    arr = await end.adata("arr")
    assert arr.dtype == np.float32 and arr.shape == (2, 3)
    assert await end.adata("arr") is arr  # cached, and shared with the sync view
    art = await end.aartifact("obj")
    assert art.encoding == "pickle" and (await art.adata()) == Counted(7)
    with pytest.raises(KeyError, match="no artifact 'nope'"):
        await end.aartifact("nope")
    with pytest.raises(AttributeError):
        await end.adata("nope")
    assert no_sync_connection(flow)


async def test_task_output_twins(flow: Flow) -> None:
    failed = (await (await flow.aget(2)).astep("train")).tasks[1]
    assert await failed.astderr() == "oops\n"
    assert await failed.astdout() == ""
    train = await (await flow.aget(1)).astep("train")
    assert [await t.astdout() for t in train] == ["hello\n" if t.index == 2 else "" for t in train]
    assert no_sync_connection(flow)


async def test_async_loading_is_lazy(flow: Flow) -> None:
    Counted.loads = 0
    end = (await (await flow.aget(1)).astep("end")).task
    assert "obj" in await end.anames()
    assert (await end.aartifact("obj")).size > 0
    assert Counted.loads == 0
    await end.adata("obj")
    await end.adata("obj")
    assert Counted.loads == 1


async def test_async_names_work_with_a_damaged_blob(flow: Flow, path: str) -> None:
    execute(path, "UPDATE blobs SET data = x'00ff' WHERE sha = ?", [sha_of(Counted(7))])
    end = (await (await flow.aget(1)).astep("end")).task
    assert await end.anames() == ["alpha", "arr", "obj", "pair", "total"]
    # A pickle is never unpickled from bytes that do not match their hash (safe loading).
    with pytest.raises(UntrustedArtifactError, match="'obj'"):
        await end.adata("obj")


async def test_unpickled_objects_read_asynchronously(flow: Flow) -> None:
    run = await flow.aget(1)
    back = pickle.loads(pickle.dumps(run))
    assert await back.adata("total") == 660
    task = pickle.loads(pickle.dumps((await run.astep("end")).task))
    assert await task.adata("pair") == (1, 2)


# --- connections ------------------------------------------------------------------------------


async def test_async_with_shares_one_connection(flow: Flow) -> None:
    async with flow:
        shared = flow._handle._shared
        assert shared is not None
        run = await flow.aget(1)
        step = await run.astep("train")
        scores: dict[int, int] = {}

        async def load(task_index: int) -> None:
            scores[task_index] = await step.tasks[task_index].adata("score")

        async with anyio.create_task_group() as tg:  # concurrent reads: some share, some don't
            for i in range(12):
                tg.start_soon(load, i)
        assert scores == {i: i * 10 for i in range(12)}
        async with flow:  # nested: the same connection
            assert flow._handle._shared is shared
        assert flow._handle._shared is shared
    assert flow._handle._shared is None
    assert await run.adata("total") == 660  # a connection of its own again


async def test_async_with_aopen(path: str) -> None:
    async with Flow.aopen("TrainFlow", path) as flow:
        assert flow._handle._shared is not None
        assert await (await flow.aget(1)).adata("total") == 660
    assert flow._handle._shared is None
    with pytest.raises(NotFoundError):
        async with Flow.aopen("NoSuchFlow", path):
            pass  # pragma: no cover


async def test_cancelled_read_leaves_the_shared_connection_usable(flow: Flow) -> None:
    async with flow:
        with anyio.move_on_after(0):
            await flow.aruns()
        with anyio.CancelScope() as scope:
            scope.cancel()
            await flow.aget(1)
        assert [r.id for r in await flow.aruns()] == ["4", "2", "1"]


async def test_async_reads_while_a_writer_holds_a_transaction(flow: Flow, path: str) -> None:
    with writer(path) as conn:
        conn.execute("BEGIN IMMEDIATE")
        write_run(path, "TrainFlow", [T("start")], conn=conn)
        start = time.monotonic()
        assert [r.id for r in await flow.aruns()] == ["4", "2", "1"]
        assert await (await flow.aget(1)).adata("total") == 660
        async with flow:
            assert await (await flow.aget(1)).aparameters() == {"alpha": 0.1, "config": {"k": 1}}
        assert time.monotonic() - start < 2
        conn.execute("COMMIT")
    latest = await flow.alatest_run()
    assert latest is not None and latest.id == "5"


async def test_loop_keeps_running_during_a_large_read(store: str) -> None:
    # 64 MB of numpy: chunked, read from the file and decoded in a worker thread
    big = np.random.default_rng(0).random(8_000_000)
    write_run(store, "Big", [T("end", artifacts={"big": big})])
    flow = await Flow.aopen("Big", store)
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.perf_counter()
        while True:
            await anyio.sleep(0.002)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        started = time.perf_counter()
        value = await (await flow.aget(1)).adata("big")
        took = time.perf_counter() - started
        tg.cancel_scope.cancel()
    np.testing.assert_array_equal(value, big)
    # The loop ran all along: many ticks, and none waited for more than a small part of the
    # read (reading 64 MB on the loop would stall it for the whole read).
    assert len(gaps) >= 5, (len(gaps), took)
    assert max(gaps) < max(0.1, took / 3), (max(gaps), took)


# --- the surface --------------------------------------------------------------------------------

TWINS = [
    (Flow, "aopen"),
    (Flow, "alatest_run"),
    (Flow, "alatest_successful_run"),
    (Flow, "aruns"),
    (Flow, "aget"),
    (Flow, "acontains"),
    (Run, "aparameters"),
    (Run, "astep"),
    (Run, "asteps"),
    (Run, "acontains"),
    (Run, "aend_task"),
    (Run, "adata"),
    (Run, "aartifact"),
    (Run, "anames"),
    (Run, "arefresh"),
    (Step, "adata"),
    (Step, "aartifact"),
    (Step, "anames"),
    (Task, "adata"),
    (Task, "aartifact"),
    (Task, "anames"),
    (Task, "acontains"),
    (Task, "aartifacts"),
    (Task, "astdout"),
    (Task, "astderr"),
    (DataArtifact, "adata"),
]


@pytest.mark.parametrize(("cls", "name"), TWINS, ids=lambda v: getattr(v, "__name__", v))
def test_every_twin_is_documented_and_awaitable(cls: type, name: str) -> None:
    import asyncflow._client as client

    assert f"{name}(" in (client.__doc__ or "")
    method = getattr(cls, name)
    assert inspect.iscoroutinefunction(method) or name == "aopen"
    assert method.__doc__ and "twin" in method.__doc__
