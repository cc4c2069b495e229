"""The process executor: tasks in worker processes behave as in threads, and fail cleanly."""

from __future__ import annotations

import functools
import itertools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import numpy as np
import pytest

from asyncflow import (
    Flow,
    FlowSpec,
    FlowValidationError,
    StepFailed,
    UntrustedArtifactError,
    WorkerLostError,
    executor,
    step,
)
from tests.flows import executor_flows as ef
from tests.test_loop_lag import max_lag

pytestmark = pytest.mark.anyio


async def _wait_for_file(path: Path, seconds: float = 30) -> str:
    for _ in range(int(seconds / 0.02)):
        if path.exists() and path.read_text():
            return path.read_text()
        await anyio.sleep(0.02)
    raise AssertionError(f"{path} never appeared")


async def test_process_tasks_run_in_other_processes_and_see_what_a_thread_would(
    store: str,
) -> None:
    run = await ef.WhereFlow(store=store, echo=False).run()
    data = run.data
    me = os.getpid()
    assert run["start"].task.data.pid_start == me
    assert data.pid_join == me and data.pid_end == me  # only @executor("process") moved
    assert me not in data.pids
    assert len(data.pids) >= 2  # a pool of at least two workers shared the four tasks
    assert data.values == [i * 10 + 499500 + 5 for i in (1, 2, 3, 4)]
    tasks = {t.data.seen["index"]: t for t in run["work"]}
    for index, task in tasks.items():
        seen = task.data.seen
        assert seen == {
            "flow": "WhereFlow",
            "run": str(run.id),
            "step": "work",
            "task": str(task.id),
            "retry": 0,
            "index": index,
        }
        assert task.stdout == f"working on {index + 1} as WhereFlow/{run.id}/work/{task.id}\n"
        assert task.data.arr_len == 1000
        # the task's recorded span is the worker's own
        assert task.started_at.timestamp() <= task.data.t0 < task.data.t1
        assert task.data.t1 <= task.finished_at.timestamp()


async def test_a_pool_of_two_runs_tasks_at_the_same_time(store: str) -> None:
    run = await ef.WhereFlow(store=store, echo=False, processes=2).run()
    spans = sorted(run.data.spans)
    overlaps = [b[0] < a[1] for a, b in itertools.pairwise(spans)]
    assert any(overlaps), spans  # two CPU-bound tasks ran at once: two processes


async def test_unchanged_artifacts_pass_on_by_reference(store: str) -> None:
    run = await ef.WhereFlow(store=store, echo=False).run()
    start = run["start"].task
    for task in run["work"]:
        assert task["arr"].sha == start["arr"].sha  # not re-encoded, the same blob


async def test_flow_wide_executor_moves_plain_steps_but_never_coroutine_steps(store: str) -> None:
    run = await ef.AllProcessFlow(store=store, echo=False, executor="process").run()
    me = os.getpid()
    data = run.data
    assert run["start"].task.data.pid_start != me
    assert data.pid_end != me
    assert run["middle"].task.data.pid_middle == me  # async def steps stay on the loop
    assert data.big_sum == 20 * 1024 * 1024 // 8
    big = run["start"].task.data.big
    assert isinstance(big, np.ndarray) and big.shape == (20 * 1024 * 1024 // 8,)


async def test_retry_after_a_raise_in_a_worker(store: str) -> None:
    run = await ef.FlakyProcessFlow(store=store, echo=False).run()
    task = run["flaky"].task
    assert [a.status for a in task.attempts] == ["failed", "succeeded"]
    assert task.attempts[0].exception == "ValueError: boom in a worker"
    # the worker's own traceback is stored, pointing at the step's code
    assert 'raise ValueError("boom in a worker")' in (task.attempts[0].traceback or "")
    assert [a.stdout for a in task.attempts] == ["attempt 0\n", "attempt 1\n"]
    assert task.data.leak == 1 and task.data.pid != os.getpid()


@pytest.mark.parametrize(
    ("how", "says"), [("exit", "exited with code 1"), ("kill", "killed by signal SIGKILL")]
)
async def test_a_worker_that_dies_fails_its_task_only_and_the_run_resumes(
    store: str, tmp_path: Path, how: str, says: str
) -> None:
    marker = tmp_path / "healed"
    flow = ef.DyingFlow(store=store, echo=False, executor="process")
    with pytest.raises(StepFailed) as info:
        await flow.run(marker=str(marker), how=how)
    cause = info.value.__cause__
    assert isinstance(cause, WorkerLostError)
    assert says in str(cause) and "DyingFlow/" in str(cause) and "/work/" in str(cause)
    assert cause.exit_code == (1 if how == "exit" else -9)
    assert "step 'work' failed" in str(info.value)
    run = info.value.run
    statuses = sorted(t.status for t in run["work"])
    assert "failed" in statuses
    assert run.status == "failed"
    marker.write_text("ok")
    resumed = await flow.resume(run.id)
    assert resumed.successful
    assert resumed.data.results == [100, 101, 102]


async def test_a_timeout_kills_the_worker_of_a_process_step(store: str, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    run = await ef.SlowProcessFlow(store=store, echo=False).run(pidfile=str(pidfile))
    task = run["slow"].task
    first, second = task.attempts
    assert second.status == "succeeded"
    assert first.status == "failed" and (first.exception or "").startswith("TimeoutError")
    assert "@timeout of 5 s" in (first.exception or "")
    assert "late" not in task.data
    # the retry, in another worker, saw the first attempt's worker gone: killed at its
    # deadline, not left sleeping for a minute
    assert task.data.first_alive is False
    assert not ef.alive(int(pidfile.read_text()))


async def test_cancelling_a_run_kills_its_workers_and_the_run_resumes(
    store: str, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pid"
    flow = ef.HangingProcessFlow(store=store, echo=False)
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(functools.partial(flow.run, pidfile=str(pidfile)))
            pid = int(await _wait_for_file(pidfile))
            scope.cancel()
    for _ in range(100):
        if not ef.alive(pid):
            break
        await anyio.sleep(0.05)
    assert not ef.alive(pid)
    run = Flow("HangingProcessFlow", store=store).latest_run
    assert run is not None and run.status == "cancelled"
    assert run["hang"].task.status == "cancelled"
    Path(str(pidfile) + ".done").write_text("")
    resumed = await flow.resume(run.id)
    assert resumed.successful and resumed["hang"].task.data.fine


async def test_catch_keeps_what_a_failed_process_attempt_set(store: str) -> None:
    run = await ef.CaughtProcessFlow(store=store, echo=False).run()
    risky = run["risky"].task
    assert risky.status == "caught"
    assert risky.data.before == "kept"
    assert risky.data.failure["type"] == "KeyError"
    assert "lost key" in risky.data.failure["traceback"]
    assert run.data.saw == ("kept", "KeyError")


async def test_cpu_bound_process_steps_leave_the_event_loop_free(store: str) -> None:
    """A ticker on the host's loop keeps ticking while CPU-bound steps run in processes
    (the benchmark, bench_loop_lag.py, holds the real target; this bound is generous)."""
    flow = ef.CpuFlow(store=store, echo=False, executor="process")
    # 16 at once (max_workers=16): on threads the loop waits ~1 s for the GIL (README).
    lag = await max_lag(lambda: flow.run(seconds=0.2, width=16))
    run = Flow("CpuFlow", store=store).latest_run
    assert run is not None and run.successful and run.data.total > 0
    assert lag < 0.25, f"max lag {lag * 1000:.0f} ms"


async def test_a_step_of_a_flow_defined_in_main_runs_in_a_process(tmp_path: Path) -> None:
    # A flow class in __main__ (a script) travels by value: the worker has no such module.
    script = tmp_path / "myflow.py"
    script.write_text(
        textwrap.dedent(
            """
            import os
            from asyncflow import FlowSpec, step

            HELPER = 41

            def helper():
                return HELPER + 1

            class ScriptFlow(FlowSpec):
                @step
                def start(self):
                    self.pid = os.getpid()
                    self.answer = helper()
                    self.next(self.end)

                @step
                async def end(self):  # on the loop: in the script's own process
                    print("end pid", os.getpid(), "answer", self.answer)

            if __name__ == "__main__":
                ScriptFlow.main()
            """
        )
    )
    out = subprocess.run(
        [sys.executable, str(script), "run", "--store", "s.db", "--executor", "process"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "answer 42" in out.stdout
    run = Flow("ScriptFlow", store=str(tmp_path / "s.db")).latest_run
    assert run is not None and run.successful
    # the worker was neither this test's process nor the script's
    worker = run["start"].task.data.pid
    assert worker != os.getpid()
    assert f"end pid {worker} " not in out.stdout


def test_executor_misuse_is_refused_when_the_class_is_defined() -> None:
    with pytest.raises(FlowValidationError, match="coroutine steps always run on the event"):

        class AsyncInProcess(FlowSpec):
            @executor("process")
            @step
            async def start(self) -> None:
                self.next(self.end)

            @step
            def end(self) -> None:
                pass

    with pytest.raises(FlowValidationError, match="must be one of 'thread', 'process', 'dask'"):
        executor("gpu")
    with pytest.raises(ValueError, match="executor must be one of"):
        ef.WhereFlow(executor="processes")
    with pytest.raises(ValueError, match="processes must be a positive integer"):
        ef.WhereFlow(processes=0)


async def test_a_worker_checks_pickles_as_the_coordinator_does(store: str, tmp_path: Path) -> None:
    from tests._storefixture import sha_of
    from tests.flows.attacker_flows import Keeper, Point
    from tests.test_attacker_store import swap_pickle

    alarm = tmp_path / "alarm"
    flow = Keeper(store=store, echo=False, executor="process")
    first = await flow.run()
    assert first.data.seen[:2] == (7, [1, 2, 3])  # read in a worker, from the file
    swap_pickle(store, sha_of(Point(7)), alarm)
    with pytest.raises(StepFailed) as info:
        await flow.resume(first.id, step="end")
    cause = info.value.__cause__
    assert isinstance(cause, UntrustedArtifactError), cause
    assert "do not match their hash" in str(cause) and cause.name == "point"
    assert not alarm.exists()  # the worker never unpickled the planted bytes


class _Picky(Exception):
    """An exception that pickles but cannot be rebuilt (its __init__ needs two arguments)."""

    def __init__(self, code: int, why: str) -> None:
        super().__init__(f"{code}: {why}")


class PickyFlow(FlowSpec):
    @executor("process")
    @step
    def start(self) -> None:
        raise _Picky(7, "odd")
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


async def test_an_exception_that_cannot_travel_keeps_its_type_name_and_traceback(
    store: str,
) -> None:
    with pytest.raises(StepFailed) as info:
        await PickyFlow(store=store, echo=False).run()
    assert "_Picky: 7: odd" in str(info.value)
    task = info.value.run["start"].task
    assert task.exception is not None and "_Picky: 7: odd" in task.exception
    assert 'raise _Picky(7, "odd")' in (task.traceback or "")


async def test_a_worker_keeps_nothing_of_the_tasks_it_ran(store: str) -> None:
    run = await ef.ManyReadsFlow(store=store, echo=False, processes=1).run()
    assert len(run.data.pids) == 1  # one worker ran all twelve
    rss = run.data.rss
    # Each task decodes its own 40 MB copy; a worker that kept its tasks would grow by
    # 40 MB a task (440 MB over the twelve), one that frees them stays flat.
    assert max(rss) - min(rss) < 150 * 1024 * 1024, [r >> 20 for r in rss]


def test_the_pool_size_follows_the_cores_within_max_workers() -> None:
    from asyncflow._runtime._remote import pool_size

    cores = os.cpu_count() or 1
    assert pool_size(16, None) == min(16, max(2, cores))
    assert pool_size(1, None) == 1  # never more than max_workers
    assert pool_size(16, 3) == 3  # processes= wins


async def test_the_pool_stops_when_the_run_ends(store: str) -> None:
    run = await ef.WhereFlow(store=store, echo=False).run()
    for pid in run.data.pids:
        for _ in range(100):
            if not ef.alive(pid):
                break
            await anyio.sleep(0.05)
        assert not ef.alive(pid)
