"""README promises about the process executor that no other test held (audit of issue 10).

Each test is named after the sentence it backs ("Where steps run: the loop, threads,
processes, Dask"); real worker processes, real store files, no mocks.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from asyncflow import Flow, StepFailed, WorkerLostError
from tests.flows import executor_claims as ec
from tests.flows.executor_flows import alive

pytestmark = pytest.mark.anyio


async def _wait_for_pid(path: Path, seconds: float = 30) -> int:
    for _ in range(int(seconds / 0.02)):
        if path.exists():
            return int(path.read_text())
        await anyio.sleep(0.02)
    raise AssertionError(f"{path} never appeared")


def _gone(pid: int, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return not alive(pid)


async def test_a_steps_executor_wins_over_the_flows(store: str) -> None:
    # README: "A step's @executor wins over the flow's executor=".
    run = await ec.PinnedToThreadFlow(store=store, echo=False, executor="process").run()
    me = os.getpid()
    data = run["end"].task.data
    assert run["start"].task.data.pid_start != me  # the flow's default: a worker
    assert run["pinned"].task.data.pid_pinned == me  # the step's own: a thread here
    assert run["pinned_timed"].task.data.pid_pinned_timed == me
    assert data.pid_end != me


def _flow_cli(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    code = "from tests.flows.executor_claims import PoolFlow; PoolFlow.main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args, "--store", str(store), "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_executor_and_worker_processes_options_on_run_and_resume(tmp_path: Path) -> None:
    # README: "--executor on run and resume sets the flow's"; `--worker-processes N` sizes
    # the pool (four overlapping CPU-bound tasks: a pool of one runs them all in one worker).
    store = tmp_path / "s.db"
    out = _flow_cli(store, "run", "--executor", "process", "--worker-processes", "1")
    assert out.returncode == 0, out.stderr
    run = Flow("PoolFlow", store=str(store)).latest_run
    assert run is not None and run.successful
    first = run.data
    assert len(first.pids) == 1 and first.coordinator not in first.pids
    out = _flow_cli(store, "resume", "start", "--executor", "process", "--worker-processes", "2")
    assert out.returncode == 0, out.stderr
    resumed = Flow("PoolFlow", store=str(store)).latest_run
    assert resumed is not None and resumed.origin_run_id == run.id
    again = resumed.data
    assert len(again.pids) == 2 and again.coordinator not in again.pids
    out = _flow_cli(store, "resume", "start")  # no --executor: threads of the coordinator
    assert out.returncode == 0, out.stderr
    threads = Flow("PoolFlow", store=str(store)).latest_run
    assert threads is not None and threads.data.pids == [threads.data.coordinator]


async def test_a_segfault_in_a_worker_fails_its_task_with_worker_lost_error(store: str) -> None:
    # README: "A worker that dies under a task (..., a segfault in native code, ...) fails
    # that task only, with WorkerLostError (.exit_code: ... negative for a signal)".
    with pytest.raises(StepFailed) as info:
        await ec.SegfaultFlow(store=store, echo=False).run()
    cause = info.value.__cause__
    assert isinstance(cause, WorkerLostError), cause
    assert cause.exit_code == -signal.SIGSEGV
    assert "killed by signal SIGSEGV (a crash in native code)" in str(cause)
    assert "SegfaultFlow/" in str(cause) and "/crash/" in str(cause)
    assert info.value.run.status == "failed"


async def test_retry_runs_a_task_whose_worker_died_on_a_fresh_worker(
    store: str, tmp_path: Path
) -> None:
    # README: "@retry retries it on a fresh worker".
    pidfile = tmp_path / "pid"
    run = await ec.SegfaultOnceFlow(store=store, echo=False).run(pidfile=str(pidfile))
    task = run["crash"].task
    first, second = task.attempts
    assert first.status == "failed" and (first.exception or "").startswith("WorkerLostError")
    assert second.status == "succeeded"
    assert task.data.pid != int(pidfile.read_text())  # not the dead worker's pid
    assert task.data.pid != os.getpid()


async def test_a_dead_worker_leaves_the_other_running_task_unharmed(store: str) -> None:
    # README: "The coordinator, the store and the other tasks are unharmed".
    with pytest.raises(StepFailed) as info:
        await ec.SiblingFlow(store=store, echo=False, processes=2).run()
    cause = info.value.__cause__
    assert isinstance(cause, WorkerLostError) and cause.exit_code == 3
    tasks = {t.index: t for t in info.value.run["work"]}
    assert tasks[1].status == "failed"
    assert tasks[0].status == "succeeded"  # it was working in the other worker meanwhile
    assert tasks[0].data.result == "finished"


async def test_workers_ignore_ctrl_c(store: str, tmp_path: Path) -> None:
    # README: "Workers ignore Ctrl-C (the coordinator stops them)". A terminal sends SIGINT
    # to the whole process group; the worker's task must go on.
    pidfile = tmp_path / "pid"
    flow = ec.WaitingProcessFlow(store=store, echo=False)
    # A process started in the background by a shell ignores SIGINT, and so would every
    # worker it starts, whatever the worker does: give the coordinator a handler (which
    # exec resets to the default in its children) so that the test means something.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        await _run_and_interrupt(flow, pidfile)
    finally:
        signal.signal(signal.SIGINT, previous)
    run = Flow("WaitingProcessFlow", store=store).latest_run
    assert run is not None and run.successful and run["wait"].task.data.went


async def _run_and_interrupt(flow: ec.WaitingProcessFlow, pidfile: Path) -> None:
    async with anyio.create_task_group() as tg:
        results: list[object] = []

        async def run() -> None:
            results.append(await flow.run(pidfile=str(pidfile)))

        tg.start_soon(run)
        pid = await _wait_for_pid(pidfile)
        os.kill(pid, signal.SIGINT)
        await anyio.sleep(0.3)
        Path(str(pidfile) + ".go").write_text("")
    (done,) = results
    assert getattr(done, "successful", False)


def test_workers_exit_by_themselves_when_the_coordinator_dies(tmp_path: Path) -> None:
    # README: "Workers ... exit by themselves if the coordinating process dies".
    pidfile = tmp_path / "pid"
    store = str(tmp_path / "s.db")
    code = (
        "import asyncio; from tests.flows.executor_claims import WaitingProcessFlow as F; "
        f"asyncio.run(F(store={store!r}, echo=False).run(pidfile={str(pidfile)!r}))"
    )
    coordinator = subprocess.Popen([sys.executable, "-c", code])
    worker = None
    try:
        end = time.monotonic() + 60
        while not pidfile.exists() and time.monotonic() < end:
            assert coordinator.poll() is None, "the coordinator ended early"
            time.sleep(0.05)
        worker = int(pidfile.read_text())
        assert alive(worker)
        coordinator.kill()
        coordinator.wait()
        assert _gone(worker, 5), "a worker outlived its coordinator"
    finally:
        if coordinator.poll() is None:
            coordinator.kill()
            coordinator.wait()
        if worker is not None and alive(worker):
            os.kill(worker, signal.SIGKILL)


async def test_a_worker_sees_a_module_as_importing_it_gives_it(store: str) -> None:
    # README: "a class from an importable module is imported by name in the worker ... A
    # worker sees a module as importing it gives it, not changes the coordinator made to
    # module state at run time."
    saved = ec.MOOD
    ec.MOOD = "changed at run time"
    try:
        run = await ec.MoodFlow(store=store, echo=False).run()
    finally:
        ec.MOOD = saved
    assert run["start"].task.data.in_thread == "changed at run time"
    assert run["remote"].task.data.in_worker == "as imported"


async def test_a_process_tasks_output_is_echoed_with_its_pathspec(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # README: "A task's printed output is echoed when the task ends (it is captured and
    # stored as always)."
    run = await ec.EchoFlow(store=store).run()
    task = run["talk"].task
    captured = capsys.readouterr()
    assert f"[{task.pathspec}] hello from a worker\n" in captured.out
    assert f"[{task.pathspec}] warning from a worker\n" in captured.err
    assert task.stdout == "hello from a worker\n"
    assert task.stderr == "warning from a worker\n"
