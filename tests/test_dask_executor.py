"""Plain steps on Dask workers: a real ``distributed.LocalCluster`` of worker processes.

One cluster (two single-threaded worker processes) serves the module, passed to the flows as
``dask_client=``; one test lets a run start (and close) a cluster of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

distributed = pytest.importorskip("distributed")

import dask  # noqa: E402

from asyncflow import (  # noqa: E402
    Flow,
    StepFailed,
    StoreError,
    UntrustedArtifactError,
    UsageError,
    WorkerLostError,
)
from asyncflow._codecs import encode  # noqa: E402
from tests.flows import dask_flows as df  # noqa: E402

# The cluster's own chatter (a worker died and was restarted) is expected here.
pytestmark = [
    pytest.mark.anyio,
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    settings = {
        "distributed.scheduler.allowed-failures": 0,  # one death fails the task
        "distributed.scheduler.active-memory-manager.start": False,
    }
    with dask.config.set(settings):
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
    client = distributed.Client(cluster, set_as_default=False)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_dask_tasks_run_in_worker_processes_with_current_output_and_artifacts(
    store: str, client: Any
) -> None:
    run = await df.WhereFlow(store=store, echo=False, dask_client=client).run(greeting="hey")
    workers = set(client.run(os.getpid).values())
    tasks = sorted(run["work"], key=lambda t: t.index)
    for task, item in zip(tasks, [1, 2, 3, 4], strict=True):
        assert task.data.pid in workers and task.data.pid != os.getpid()
        assert task.data.square == item * item + 10
        assert task.data.seen == ("WhereFlow", run.id, "work", task.id)
        assert task.stdout == f"hey from {task.pathspec}\n"
        assert task.stderr == "to stderr\n"
    join = run["join"].task
    assert join.data.squares == [11, 14, 19, 26]
    assert join.data.join_pid in workers
    assert run["end"].task.data.end_pid == os.getpid()  # thread steps stay home


async def test_a_dask_step_reads_a_20_mb_array_from_its_parent(store: str, client: Any) -> None:
    run = await df.BigParentFlow(store=store, echo=False, dask_client=client).run()
    use = run["use"].task.data
    n = df.BIG // 8
    assert use.pid != os.getpid()
    assert use.size == df.BIG
    assert use.total == n * (n - 1) // 2
    assert use.first == -1
    assert run["end"].task.data.first_after == -1  # changed in place: stored, as in a thread


def _incoming(client: Any) -> dict[str, list[tuple[str, int]]]:
    """Per worker: the keys of every value it fetched from another worker, with bytes."""

    def log(dask_worker: Any) -> list[tuple[str, int]]:
        return [
            (str(key), int(size))
            for entry in dask_worker.transfer_incoming_log
            for key, size in entry["keys"].items()
        ]

    out: dict[str, list[tuple[str, int]]] = client.run(log)
    return out


def _arrivals(client: Any) -> dict[str, dict[bytes, int]]:
    """Per worker: how many times each shipped value reached it (scattered or fetched)."""

    def count() -> dict[bytes, int]:
        from asyncflow._runtime._executors._dask_task import ARRIVALS

        return dict(ARRIVALS)

    out: dict[str, dict[bytes, int]] = client.run(count)
    return out


async def test_a_parent_array_travels_to_each_dask_worker_at_most_once(
    store: str, client: Any
) -> None:
    before, logs_before = _arrivals(client), _incoming(client)
    width = 24
    run = await df.FanOutFlow(store=store, echo=False, dask_client=client).run(width=width)
    join = run["join"].task.data
    assert len(join.pids) == 2  # the premise: tasks ran on both workers
    assert join.totals == [1_000_000.0 + i for i in range(width)]
    sha = encode(run["start"].task.data.arr).sha
    after, logs_after = _arrivals(client), _incoming(client)
    # Each worker that ran the tasks received the array exactly once (scattered to one,
    # fetched by the other), whatever the number of tasks.
    arrived = {w: after[w].get(sha, 0) - before.get(w, {}).get(sha, 0) for w in after}
    assert sorted(arrived.values()) == [1, 1], arrived
    # Dask's own transfer logs agree: one fetch, of the whole array, by one worker.
    fetched = [
        size
        for worker in logs_after
        for key, size in logs_after[worker][len(logs_before.get(worker, [])) :]
        if sha.hex() in key
    ]
    assert len(fetched) == 1 and fetched[0] >= 8_000_000, fetched


async def test_a_dask_worker_keeps_nothing_of_a_finished_task(store: str, client: Any) -> None:
    def held() -> int:
        # Tasks the worker's run contexts still hold (each with its flow and its values).
        from asyncflow._runtime._executors import _dask_task

        return sum(len(ctx.running) for ctx in _dask_task._runs._runs.values())

    await df.FanOutFlow(store=store, echo=False, dask_client=client).run(width=6)
    assert set(client.run(held).values()) == {0}


@pytest.mark.parametrize("big", [False, True], ids=["small", "2MB"])
async def test_a_pickle_whose_signature_was_removed_is_refused_on_the_dask_worker(
    store: str, client: Any, tmp_path: Path, big: bool
) -> None:
    marker = tmp_path / "unpickled"
    with pytest.raises(StepFailed) as info:
        await df.UnsignedFlow(store=store, echo=False, dask_client=client).run(
            db=store, marker=str(marker), big=big
        )
    cause = info.value.__cause__
    assert isinstance(cause, UntrustedArtifactError), repr(cause)
    assert cause.name == "evil"
    assert not marker.exists()  # never unpickled, here or on the worker


async def test_retry_reruns_a_dask_step_that_raised(store: str, client: Any) -> None:
    run = await df.RetryFlow(store=store, echo=False, dask_client=client).run()
    task = run["flaky"].task
    assert task.data.attempt == 1
    assert task.stdout == "attempt 1\n"


async def test_a_dask_worker_that_dies_fails_its_task_and_the_run_resumes(
    store: str, client: Any, tmp_path: Path
) -> None:
    marker = str(tmp_path / "died")
    flow = df.DieFlow(store=store, echo=False, dask_client=client)
    with pytest.raises(StepFailed) as info:
        await flow.run(marker=marker)
    lost = info.value.__cause__
    assert isinstance(lost, WorkerLostError)
    assert f"DieFlow/{info.value.run.id}/die/" in str(lost)
    assert "Retry the step with @retry, or resume the run" in str(lost)
    assert os.path.exists(marker)  # the step ran, and its worker died
    run = await flow.resume()
    assert run.successful
    assert run["die"].task.data.value == 42


async def test_retry_reruns_a_dask_step_whose_worker_died(
    store: str, client: Any, tmp_path: Path
) -> None:
    marker = str(tmp_path / "died")
    run = await df.DieRetryFlow(store=store, echo=False, dask_client=client).run(marker=marker)
    assert os.path.exists(marker)
    assert run["die"].task.data.value == 42


async def test_values_lost_with_a_dead_worker_are_shipped_again_for_the_retry(
    store: str, tmp_path: Path
) -> None:
    # One worker (a cluster of the run's own): it holds the only copy of the pack and of
    # start's value when it dies, so the retry needs them shipped again.
    marker = str(tmp_path / "died")
    flow = df.DieRetryFlow(store=store, echo=False, executor="dask", processes=1)
    run = await flow.run(marker=marker)
    assert os.path.exists(marker)
    assert run["die"].task.data.value == 42


async def test_a_read_the_source_does_not_show_falls_back_to_the_store_file(
    store: str, client: Any
) -> None:
    run = await df.HiddenReadFlow(store=store, echo=False, dask_client=client).run(store_file=store)
    assert run["peek"].task.data.got == [1, 2, 3]


async def test_a_read_that_was_not_shipped_fails_naming_the_artifact_when_the_file_is_out_of_sight(
    store: str, client: Any
) -> None:
    with pytest.raises(StepFailed) as info:
        await df.HiddenReadFlow(store=store, echo=False, dask_client=client).run(
            store_file=store, hide=True
        )
    cause = info.value.__cause__
    assert isinstance(cause, StoreError)
    assert "cannot read artifact 'hidden'" in str(cause)
    assert "cannot open the store file" in str(cause)
    assert "Read it as self.<name>" in str(cause)


async def test_a_dask_timeout_abandons_the_task(store: str, client: Any) -> None:
    began = time.monotonic()
    with pytest.raises(StepFailed) as info:
        await df.SlowFlow(store=store, echo=False, dask_client=client).run()
    assert isinstance(info.value.__cause__, TimeoutError)
    assert time.monotonic() - began < 3.5


def _ours_on_the_cluster(client: Any) -> list[str]:
    """The keys of asyncflow's tasks and shipped values the scheduler still knows."""

    def keys(dask_scheduler: Any) -> list[str]:
        return [str(k) for k in dask_scheduler.tasks if str(k).startswith("asyncflow-")]

    out: list[str] = client.run_on_scheduler(keys)
    return out


async def test_a_cancelled_run_cancels_its_dask_task_and_releases_what_it_shipped(
    store: str, client: Any
) -> None:
    flow = df.SleepyFlow(store=store, echo=False, dask_client=client)
    with anyio.move_on_after(1.5):
        await flow.run()
    run = Flow("SleepyFlow", store=store).latest_run
    assert run is not None and run.status == "cancelled"
    assert run["sleepy"].task.status == "cancelled"
    deadline = time.monotonic() + 10
    while _ours_on_the_cluster(client) and time.monotonic() < deadline:
        await anyio.sleep(0.1)
    assert _ours_on_the_cluster(client) == []  # no task, no pack, no value left behind


async def test_an_asynchronous_client_is_refused_before_the_run_starts(
    store: str, client: Any
) -> None:
    address = client.scheduler.address
    async with distributed.Client(address, asynchronous=True, set_as_default=False) as aclient:
        with pytest.raises(UsageError, match="asynchronous"):
            await df.PlainFlow(store=store, echo=False, executor="dask", dask_client=aclient).run()
    assert not os.path.exists(store)  # nothing was stored


async def test_a_run_without_a_client_starts_a_local_cluster_and_closes_it(store: str) -> None:
    run = await df.PlainFlow(store=store, echo=False, executor="dask", processes=2).run()
    pid = run["double"].task.data.pid
    assert pid != os.getpid()
    assert run["double"].task.data.y == 6
    assert run["end"].task.data.end_pid != os.getpid()  # every plain step, on Dask
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), "the run's Dask worker outlived the run"


def test_without_distributed_a_dask_run_fails_before_it_starts(tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["distributed"] = None  # as if asyncflow[dask] were not installed
        import asyncio
        from asyncflow import UsageError
        from tests.flows.dask_flows import PlainFlow
        try:
            asyncio.run(PlainFlow(store={str(store)!r}, executor="dask").run())
        except UsageError as exc:
            print("UsageError:", exc)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "UsageError:" in out.stdout
    assert "pip install 'asyncflow[dask]'" in out.stdout
    assert not store.exists()  # nothing was stored: the run never started
    assert Flow  # the client is importable without distributed too (imported above)


def test_a_flow_defined_in_a_main_script_runs_on_dask(tmp_path: Path) -> None:
    # The flow class travels by value (cloudpickle); the cluster the run starts spawns its
    # workers, which import __main__ again: the script needs the usual __main__ guard.
    script = tmp_path / "main_flow.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import asyncio, os
            from asyncflow import FlowSpec, step

            class MainFlow(FlowSpec):
                @step
                def start(self):
                    self.x = 20
                    self.next(self.end)

                @step
                def end(self):
                    self.y = self.x + 1
                    self.pid = os.getpid()

            if __name__ == "__main__":
                run = asyncio.run(
                    MainFlow(store={str(tmp_path / "store.db")!r}, echo=False,
                             executor="dask", processes=1).run()
                )
                data = run["end"].task.data
                print(data.y, data.pid != os.getpid())
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["21", "True"]
