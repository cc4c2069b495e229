"""@retry, @catch, @timeout and @executor written bare (without parentheses), as Metaflow users
write them: bare @retry and @catch take their defaults; bare @timeout and @executor have no
default and are refused with a message naming what to write instead.

Each flow is defined inside its test, so that a decorator refused at class definition fails
that test alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from asyncflow import (
    Flow,
    FlowSpec,
    FlowValidationError,
    StepFailed,
    catch,
    current,
    executor,
    retry,
    step,
    timeout,
)
from asyncflow._spec._settings import CatchPolicy, RetryPolicy
from asyncflow._spec._step import step_info

pytestmark = pytest.mark.anyio


async def test_bare_retry_retries_three_more_times_as_metaflow_does(store: str) -> None:
    class BareRetryFlow(FlowSpec):
        @step
        def start(self) -> None:
            self.next(self.flaky)

        @retry
        @step
        def flaky(self) -> None:
            if current.retry_count < 3:
                raise ValueError(f"attempt {current.retry_count}")
            self.attempt = current.retry_count
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    run = await BareRetryFlow(store=store, echo=False).run()
    task = run["flaky"].task
    assert task.data.attempt == 3
    assert [a.status for a in task.attempts] == ["failed", "failed", "failed", "succeeded"]


async def test_bare_retry_gives_up_after_three_extra_attempts(store: str) -> None:
    class BareRetryExhaustedFlow(FlowSpec):
        @step
        def start(self) -> None:
            self.next(self.always)

        @retry
        @step
        async def always(self) -> None:
            raise RuntimeError(f"attempt {current.retry_count} failed")
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    with pytest.raises(StepFailed) as info:
        await BareRetryExhaustedFlow(store=store, echo=False).run()
    attempts = info.value.run["always"].task.attempts
    assert [a.exception for a in attempts] == [
        f"RuntimeError: attempt {n} failed" for n in range(4)
    ]


async def test_bare_catch_catches_and_the_run_goes_on(store: str) -> None:
    class BareCatchFlow(FlowSpec):
        @step
        def start(self) -> None:
            self.next(self.risky)

        @catch
        @step
        def risky(self) -> None:
            self.before = "kept"
            raise KeyError("missing thing")
            self.next(self.end)

        @step
        def end(self) -> None:
            self.reached = True

    run = await BareCatchFlow(store=store, echo=False).run()
    assert run.successful
    risky = run["risky"].task
    assert risky.status == "caught"
    assert risky.exception == "KeyError: 'missing thing'"
    assert "KeyError" in risky.stderr  # the default print_exception=True
    assert risky.data.before == "kept"
    assert run.data.reached is True


async def test_bare_retry_and_catch_stack_with_a_timeout(store: str) -> None:
    class BareStackFlow(FlowSpec):
        @step
        def start(self) -> None:
            self.next(self.slow)

        @retry
        @catch
        @timeout(seconds=0.1)
        @step
        async def slow(self) -> None:
            import asyncio

            await asyncio.sleep(30)
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    run = await BareStackFlow(store=store, echo=False).run()
    slow = run["slow"].task
    assert slow.status == "caught"
    assert [(a.exception or "").split(":")[0] for a in slow.attempts] == ["TimeoutError"] * 4


def test_bare_and_called_forms_mean_the_same() -> None:
    def make() -> Any:
        def work(self: Any) -> None:
            pass

        return step(work)

    bare = catch(retry(make()))
    called = catch()(retry()(make()))
    positional = retry(3)(make())
    for func in (bare, called):
        info = step_info(func)
        assert info is not None
        assert info.retry == RetryPolicy(times=3, minutes_between_retries=0.0)
        assert info.catch == CatchPolicy(var=None, print_exception=True)
    info = step_info(positional)
    assert info is not None and info.retry == RetryPolicy(3, 0.0)


def test_bare_timeout_is_refused_naming_the_arguments_to_give() -> None:
    with pytest.raises(FlowValidationError) as info:

        class BareTimeoutFlow(FlowSpec):
            @timeout  # type: ignore[arg-type]  # a type checker refuses it too
            @step
            def start(self) -> None:
                self.next(self.end)

            @step
            def end(self) -> None:
                pass

    message = str(info.value)
    assert "without a duration" in message
    assert "@timeout(seconds=...)" in message and "@timeout(minutes=...)" in message
    assert "step 'start'" in message and f"{__file__}:" in message
    assert "function" not in message  # no function repr


def test_bare_executor_is_refused_naming_the_executors() -> None:
    with pytest.raises(FlowValidationError) as info:

        class BareExecutorFlow(FlowSpec):
            @executor  # type: ignore[arg-type]  # a type checker refuses it too
            @step
            def start(self) -> None:
                self.next(self.end)

            @step
            def end(self) -> None:
                pass

    message = str(info.value)
    assert "without an executor's name" in message
    assert "'thread', 'process', 'dask'" in message
    assert "step 'start'" in message
    assert "function" not in message


@pytest.mark.parametrize("decorator", [retry, catch, timeout, executor])
def test_a_bare_decorator_above_a_non_step_says_so(decorator: Any) -> None:
    def helper(self: Any) -> None:
        pass

    with pytest.raises(FlowValidationError) as info:
        decorator(helper)
    message = str(info.value)
    assert "'helper'" in message
    assert "function" not in message  # no function repr
    assert "whole number" not in message
    if decorator in (retry, catch):
        assert "not a step" in message and "above @step" in message


def test_bare_decorators_in_a_flow_file_run_from_the_shell(tmp_path: Path) -> None:
    """``python flow.py run`` of a file with bare @retry and @catch, then the client."""
    source = textwrap.dedent(
        """
        from asyncflow import FlowSpec, catch, current, retry, step


        class ShellBareFlow(FlowSpec):
            @step
            def start(self):
                self.next(self.flaky)

            @retry
            @step
            def flaky(self):
                if current.retry_count < 3:
                    raise ValueError("not yet")
                self.next(self.risky)

            @catch
            @step
            def risky(self):
                raise KeyError("gone")
                self.next(self.end)

            @step
            def end(self):
                pass


        if __name__ == "__main__":
            ShellBareFlow.main()
        """
    )
    (tmp_path / "flow.py").write_text(source)
    store = tmp_path / "s.db"
    env = {k: v for k, v in os.environ.items() if k != "ASYNCFLOW_STORE"}
    proc = subprocess.run(
        [sys.executable, "flow.py", "run", "--store", str(store), "--quiet"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    with Flow("ShellBareFlow", store=store) as flow:
        run = flow.latest_run
        assert run is not None and run.successful
        assert run["flaky"].task.retry_count == 3
        assert run["risky"].task.status == "caught"
