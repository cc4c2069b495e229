"""The process executor against a careless user and an attacker: real workers, real files."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import pytest

from asyncflow import StepFailed, WorkerLostError
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
