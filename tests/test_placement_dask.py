"""@resources and @environment on the Dask executor, with a real ``distributed.LocalCluster``
whose one worker (two threads) declares ``CPU=2``: a step's resources become the task's worker
resources only for the names the cluster declares, and a task no worker can take fails at
once instead of waiting forever."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

distributed = pytest.importorskip("distributed")

import dask  # noqa: E402

from asyncflow import StepFailed, UsageError  # noqa: E402
from tests.flows import placement_flows as pf  # noqa: E402

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    settings = {"distributed.scheduler.active-memory-manager.start": False}
    with dask.config.set(settings):
        cluster = distributed.LocalCluster(
            n_workers=1,
            threads_per_worker=2,
            processes=True,
            dashboard_address=":0",
            resources={"CPU": 2},
        )
    client = distributed.Client(cluster, set_as_default=False)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def _overlap(spans: list[tuple[float, float]]) -> bool:
    (_, first_end), (second_start, _) = spans
    return second_start < first_end


async def test_dask_tasks_take_their_steps_cpus_as_worker_resources(
    store: str, client: Any
) -> None:
    # The worker has two threads: without @resources its two tasks run at once ...
    free = await pf.CpuFreeFlow(store, echo=False, executor="dask", dask_client=client).run()
    assert _overlap(free["join"].task.data.spans)
    # ... with @resources(cpu=2) each takes both declared CPUs: one at a time.
    hungry = await pf.CpuHungryFlow(store, echo=False, executor="dask", dask_client=client).run()
    join = hungry["join"].task.data
    assert not _overlap(join.spans), join.spans
    assert join.pids[0] != os.getpid()


async def test_a_task_no_dask_worker_can_take_fails_at_once(store: str, client: Any) -> None:
    flow = pf.TooBigFlow(store, echo=False, executor="dask", dask_client=client)
    with anyio.fail_after(60), pytest.raises(StepFailed) as raised:
        await flow.run()
    cause = raised.value.__cause__
    assert isinstance(cause, UsageError)
    assert "CPU=4" in str(cause) and "CPU=2" in str(cause) and "forever" in str(cause)


async def test_resources_the_cluster_does_not_declare_are_not_asked(
    store: str, client: Any
) -> None:
    flow = pf.UndeclaredMemoryFlow(store, echo=False, executor="dask", dask_client=client)
    with anyio.fail_after(60):
        run = await flow.run()
    assert run["start"].task.data.ran


async def test_an_environment_step_on_dask_sees_its_variables_and_they_are_restored(
    store: str, client: Any
) -> None:
    run = await pf.DaskEnvFlow(store, echo=False, executor="dask", dask_client=client).run()
    end = run["end"].task.data
    assert end.seen == "on" and end.pid != os.getpid()
    assert end.end_pid == end.pid  # the one worker process ran both
    assert end.after is None
    assert "AF_DASK_SETTING" not in os.environ


async def test_environment_tasks_take_turns_in_a_dask_worker_with_two_threads(
    store: str, client: Any
) -> None:
    run = await pf.EnvPairFlow(store, echo=False, executor="dask", dask_client=client).run()
    assert not _overlap(run["join"].task.data.spans)


async def test_the_cluster_a_run_starts_declares_no_resources(store: str) -> None:
    flow = pf.UndeclaredMemoryFlow(store, echo=False, executor="dask", processes=1)
    with anyio.fail_after(120):
        run = await flow.run()
    assert run["start"].task.data.ran
