"""@retry, @catch and @timeout: attempts, recorded failures, deadlines, misuse."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest

from asyncflow import FlowSpec, FlowValidationError, StepFailed, catch, retry, step, timeout
from tests.flows import policies as pf

pytestmark = pytest.mark.anyio


async def test_retry_reruns_from_the_parent_and_records_every_attempt(store: str) -> None:
    run = await pf.FlakyFlow(store=store, echo=False).run()
    task = run["flaky"].task
    assert task.retry_count == 2
    assert task.data.final_attempt == 2
    # a failed attempt's artifacts are never seen by the next attempt or downstream
    assert task.data.seen_leak is False
    assert "leak" not in task.data
    assert run.data.leak_downstream is False
    attempts = task.attempts
    assert [a.attempt for a in attempts] == [0, 1, 2]
    assert [a.status for a in attempts] == ["failed", "failed", "succeeded"]
    assert attempts[0].exception == "ValueError: boom 0"
    assert "boom 1" in (attempts[1].traceback or "")
    assert [a.stdout.strip() for a in attempts] == ["attempt 0", "attempt 1", "attempt 2"]
    assert [a.attempt for a in await task.aattempts()] == [0, 1, 2]


async def test_retries_that_run_out_fail_the_run(store: str) -> None:
    with pytest.raises(StepFailed) as info:
        await pf.ExhaustedFlow(store=store, echo=False).run()
    assert isinstance(info.value.__cause__, RuntimeError)
    assert "attempt 1 failed" in str(info.value.__cause__)
    task = info.value.run["always"].task
    assert task.status == "failed"
    assert [a.exception for a in task.attempts] == [
        "RuntimeError: attempt 0 failed",
        "RuntimeError: attempt 1 failed",
    ]


async def test_minutes_between_retries_is_honoured(store: str) -> None:
    run = await pf.PausedRetryFlow(store=store, echo=False).run()
    first, second = run["flaky"].task.attempts
    gap = second.started_at - first.finished_at
    assert gap >= 0.28, gap


async def test_catch_keeps_going_and_describes_the_failure(store: str) -> None:
    run = await pf.CaughtFlow(store=store, echo=False).run()
    assert run.successful
    risky = run["risky"].task
    assert risky.status == "caught"
    assert not risky.successful
    assert risky.exception == "KeyError: 'missing thing'"
    assert "KeyError" in risky.stderr  # print_exception=True
    error = run.data.risky_error
    assert error["type"] == "KeyError"
    assert error["message"] == "'missing thing'"
    assert "raise KeyError" in error["traceback"]
    assert run.data.fine_error is None  # on success the variable is None
    assert run.data.before == "kept"  # artifacts set before the failure are kept


async def test_timeout_cancels_a_coroutine_step(store: str) -> None:
    started = time.monotonic()
    with pytest.raises(StepFailed) as info:
        await pf.TimeoutFlow(store=store, echo=False).run()
    assert time.monotonic() - started < 5
    assert isinstance(info.value.__cause__, TimeoutError)
    assert "@timeout of 0.2 s" in str(info.value.__cause__)
    task = info.value.run["slow"].task
    assert task.finished_at.timestamp() - task.started_at.timestamp() < 2


async def test_timeout_of_a_plain_step_discards_its_late_result(store: str, tmp_path: Path) -> None:
    marker = str(tmp_path / "late.txt")
    with pytest.raises(StepFailed) as info:
        await pf.PlainTimeoutFlow(store=store, echo=False).run(marker=marker)
    assert isinstance(info.value.__cause__, TimeoutError)
    assert not pf.marker_exists(marker)  # the run ended before the thread did
    for _ in range(300):  # the thread runs on: give it up to 15 s on a loaded machine
        if pf.marker_exists(marker):
            break
        await anyio.sleep(0.05)
    assert pf.marker_exists(marker)  # the thread ran on...
    task = info.value.run.refresh()["slow"].task
    assert task.status == "failed"
    assert "late" not in task.data  # ...but what it produced was never committed


async def test_retry_and_timeout_together(store: str) -> None:
    with pytest.raises(StepFailed) as info:
        await pf.RetriedTimeoutFlow(store=store, echo=False).run()
    attempts = info.value.run["slow"].task.attempts
    assert [a.status for a in attempts] == ["failed", "failed"]
    assert all((a.exception or "").startswith("TimeoutError") for a in attempts)


async def test_catch_on_a_foreach_split_is_refused_before_the_run(store: str) -> None:
    with pytest.raises(FlowValidationError, match="foreach split"):
        await pf.CatchOnForeachFlow(store=store, echo=False).run()


def test_decorator_above_a_non_step_is_refused() -> None:
    with pytest.raises(FlowValidationError, match="not a step"):

        class Bad(FlowSpec):
            @retry()
            def start(self) -> None:
                pass


def test_decorator_twice_is_refused() -> None:
    with pytest.raises(FlowValidationError, match="twice"):

        class Bad(FlowSpec):
            @catch()
            @catch()
            @step
            def start(self) -> None:
                pass


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: timeout(), id="zero timeout"),
        pytest.param(lambda: timeout(seconds=-1), id="negative timeout"),
        pytest.param(lambda: retry(times=-1), id="negative retry count"),
        pytest.param(lambda: retry(times=1.5), id="fractional retry count"),  # type: ignore[arg-type]
        pytest.param(lambda: retry(minutes_between_retries=-1), id="negative pause"),
        pytest.param(lambda: catch(var="_hidden"), id="private catch var"),
    ],
)
def test_nonsense_arguments_are_refused(make: object) -> None:
    with pytest.raises(FlowValidationError):
        make()  # type: ignore[operator]
