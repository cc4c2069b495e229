"""The process executor against a careless user and an attacker: real workers, real files."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from asyncflow import Flow, StepFailed, WorkerLostError
from asyncflow._runtime._jobs import RemoteError
from tests.flows import executor_attack_flows as af

pytestmark = pytest.mark.anyio


async def test_a_worker_dying_is_seen_at_once_though_its_step_left_children_running(
    store: str, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pids"
    began = time.monotonic()
    try:
        with pytest.raises(StepFailed) as info:
            await af.OutlivedFlow(store=store, echo=False).run(pidfile=str(pidfile))
        took = time.monotonic() - began
    finally:
        for pid in pidfile.read_text().split() if pidfile.exists() else ():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
    cause = info.value.__cause__
    assert isinstance(cause, WorkerLostError) and cause.exit_code == 3
    assert took < 20, took  # not the 60 s the children live on with the worker's socket
    assert info.value.run.status == "failed"


async def test_a_task_never_fails_on_an_idle_worker_killed_from_outside(store: str) -> None:
    run = await af.IdleKillFlow(store=store, echo=False, processes=1).run()
    assert run.successful
    assert run.data.pid_work != run["start"].task.data.pid_start  # a fresh worker ran it
    assert [a.status for a in run["work"].task.attempts] == ["succeeded"]


async def test_a_relative_store_is_the_file_the_run_opened_though_a_step_changed_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    await af.ChdirFlow(store="rel.db", echo=False).run(elsewhere=str(elsewhere))
    run = Flow("ChdirFlow", store=str(tmp_path / "rel.db")).latest_run
    assert run is not None and run.successful and run.data.y == 42
    assert (tmp_path / "rel.db").exists() and not (elsewhere / "rel.db").exists()


async def test_a_dask_address_that_is_no_address_fails_as_one_nobody_answers(store: str) -> None:
    pytest.importorskip("distributed")
    flow = af.ChdirFlow(store=store, echo=False, executor="dask", dask_address="not a url")
    with pytest.raises(StepFailed) as info:
        await flow.run(elsewhere=os.getcwd())
    cause = info.value.__cause__
    assert isinstance(cause, WorkerLostError), repr(cause)
    assert "cannot connect to the Dask scheduler at 'not a url'" in str(cause)


def test_an_empty_dask_address_on_the_command_line_is_one_line_and_exit_code_2(
    tmp_path: Path,
) -> None:
    script = tmp_path / "flow.py"
    script.write_text(
        "from asyncflow import FlowSpec, step\n"
        "class F(FlowSpec):\n"
        "    @step\n"
        "    def start(self):\n"
        "        self.next(self.end)\n"
        "    @step\n"
        "    def end(self):\n"
        "        pass\n"
        "if __name__ == '__main__':\n"
        "    F.main()\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            str(script),
            "run",
            "--store",
            str(tmp_path / "s.db"),
            "--executor",
            "dask",
            "--dask-address",
            "",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "dask_address must be" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "s.db").exists()


async def test_a_reply_that_will_not_unpickle_fails_its_task_saying_why(store: str) -> None:
    with pytest.raises(StepFailed) as info:
        await af.UnreadableItemsFlow(store=store, echo=False).run()
    cause = info.value.__cause__
    assert isinstance(cause, RemoteError) and cause.type_name == "TypeError", repr(cause)
    assert "UnreadableItemsFlow/1/start/" in str(cause) and "could not be read" in str(cause)
    assert "missing 1 required positional argument" in str(cause)
    assert info.value.run.status == "failed"


@pytest.mark.parametrize("what", ["keyboard", "base"])
async def test_a_keyboard_interrupt_in_a_process_step_fails_that_task_only(
    store: str, what: str, capfd: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(StepFailed) as info:
        await af.InterruptFlow(store=store, echo=False).run(what=what)
    cause = info.value.__cause__
    assert isinstance(cause, RemoteError), repr(cause)  # not WorkerLostError: the worker lives
    name = "KeyboardInterrupt" if what == "keyboard" else "Interrupted"
    assert cause.type_name == name
    task = info.value.run["start"].task
    assert (task.exception or "").startswith(f"RemoteError: {name}")
    assert "raise" in (task.traceback or "")  # the worker's own traceback is stored
    assert "Traceback" not in capfd.readouterr().err  # nothing spilled onto the terminal


def test_a_dask_script_without_a_main_guard_fails_saying_so_and_stores_one_run(
    tmp_path: Path,
) -> None:
    pytest.importorskip("distributed")
    store = tmp_path / "store.db"
    script = tmp_path / "unguarded.py"
    script.write_text(
        "import asyncio\n"
        "from asyncflow import FlowSpec, step\n"
        "class Unguarded(FlowSpec):\n"
        "    @step\n"
        "    def start(self):\n"
        "        self.next(self.end)\n"
        "    @step\n"
        "    def end(self):\n"
        "        pass\n"
        f"asyncio.run(Unguarded(store={str(store)!r}, echo=False, executor='dask',"
        " processes=1).run())\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert "cannot start a Dask LocalCluster" in last and "if __name__ == '__main__'" in last
    # the worker process that imported the script again was refused a run of its own
    assert "nothing was run" in done.stderr
    runs = Flow("Unguarded", store=str(store)).runs()
    assert [r.status for r in runs] == ["failed"]


async def test_threads_a_process_step_leaves_running_do_not_hold_up_the_end_of_the_run(
    store: str,
) -> None:
    began = time.monotonic()
    run = await af.LingeringThreadFlow(store=store, echo=False, processes=3).run()
    took = time.monotonic() - began
    assert run.successful
    assert took < 4.5, took  # was 5 s per worker, one after the other, each killed at last
    for pid in run.data.pids:  # the workers are gone, not left with their threads
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.02)
        else:
            raise AssertionError(f"worker {pid} still runs")
