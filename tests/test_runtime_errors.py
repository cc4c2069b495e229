"""Failures at run time: StepFailed, the recorded failed task, next() misuse, bad foreach."""

from __future__ import annotations

import os
import sqlite3
from typing import Any

import pytest

from asyncflow import AsyncflowError, Flow, FlowSpec, FlowValidationError, Run, StepFailed
from tests.flows import errors as ef


async def step_failed(flow: FlowSpec, **params: Any) -> StepFailed:
    with pytest.raises(StepFailed) as info:
        await flow.run(**params)
    return info.value


def run_count(store: str) -> int:
    if not os.path.exists(store):
        return 0
    conn = sqlite3.connect(store)
    try:
        return int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])
    finally:
        conn.close()


# --- StepFailed ----------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("where", "cause_type", "text"),
    [("work", ValueError, "kaboom from work 42"), ("awork", KeyError, "kaboom from awork")],
    ids=["plain-step", "coroutine-step"],
)
async def test_step_failed_has_the_failed_run_and_the_step_exception(
    store: str, where: str, cause_type: type[Exception], text: str
) -> None:
    exc = await step_failed(ef.BoomFlow(store=store, echo=False), where=where)
    run = exc.run
    assert isinstance(run, Run)
    assert run.status == "failed"
    assert not run.successful and run.finished
    assert type(exc.__cause__) is cause_type
    assert text in str(exc.__cause__)
    failed = run[where].task
    assert not failed.successful
    assert failed.pathspec == f"BoomFlow/{run.id}/{where}/{failed.id}"
    assert repr(where) in str(exc) or f" {where} " in str(exc)
    assert failed.pathspec in str(exc)
    assert text in str(exc)
    # the store agrees, and nothing ran after the failure
    with Flow("BoomFlow", store=store) as flow:
        latest = flow.latest_run
        assert latest is not None
        assert (latest.id, latest.status) == (run.id, "failed")
    assert "end" not in run
    assert run["start"].task.successful


@pytest.mark.anyio
async def test_the_failed_task_is_recorded_with_exception_text_and_traceback(store: str) -> None:
    exc = await step_failed(ef.BoomFlow(store=store, echo=False), where="work")
    task = exc.run["work"].task
    assert task.exception is not None
    assert "ValueError" in task.exception
    assert "kaboom from work 42" in task.exception
    assert task.traceback is not None
    assert "Traceback" in task.traceback
    assert "kaboom from work 42" in task.traceback
    assert "flows/errors.py" in task.traceback.replace(os.sep, "/")
    assert 'raise ValueError("kaboom from work 42")' in task.traceback
    assert task.stdout == "work is about to fail\n"  # output before the failure is kept
    assert "awork" not in exc.run


@pytest.mark.anyio
async def test_a_failed_foreach_task_is_the_one_named(store: str) -> None:
    exc = await step_failed(ef.ForeachBoomFlow(store=store, echo=False))
    failed = [task for task in exc.run["body"] if not task.successful]
    assert len(failed) == 1
    assert failed[0].index == 1
    assert failed[0].pathspec in str(exc)
    assert "task 1 failed" in str(exc.__cause__)
    assert "join" not in exc.run


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("where", "code"), [("work", 3), ("awork", 4)], ids=["plain-step", "coroutine-step"]
)
async def test_sys_exit_in_a_step_fails_the_task_like_any_error(
    store: str, where: str, code: int
) -> None:
    """No ExceptionGroup escapes run(), and the run is failed, not cancelled."""
    try:
        await ef.ExitFlow(store=store, echo=False).run(where=where)
    except StepFailed as exc:
        assert isinstance(exc.__cause__, SystemExit)
        assert exc.__cause__.code == code
        assert exc.run.status == "failed"
        assert not exc.run[where].task.successful
        assert "SystemExit" in (exc.run[where].task.exception or "")
    except BaseException as exc:
        pytest.fail(f"run() raised {exc!r} instead of StepFailed")
    else:
        pytest.fail("run() succeeded although a step called sys.exit()")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("where", "kind"),
    [
        ("work", "base"),
        ("work", "generator-exit"),
        ("work", "own"),
        ("work", "interrupt"),  # no signal reaches a worker thread: the step raised it
        ("rwork", "base"),
        ("rwork", "interrupt"),
        ("awork", "base"),
        ("awork", "generator-exit"),
        ("awork", "own"),
    ],
)
async def test_a_step_s_own_base_exception_fails_the_task_not_the_run(
    store: str, where: str, kind: str
) -> None:
    """raise BaseException(...) (or GeneratorExit, or a subclass of its own) in a step is
    that task's failure: StepFailed, a failed run, @retry applied; never a cancelled run."""
    try:
        await ef.BaseRaiseFlow(store=store, echo=False).run(where=where, kind=kind)
    except StepFailed as exc:
        assert exc.__cause__ is ef.BASE_ERRORS[kind]
        assert exc.run.status == "failed"
        task = exc.run[where].task
        assert not task.successful
        assert type(ef.BASE_ERRORS[kind]).__name__ in (task.exception or "")
        assert task.retry_count == (1 if where == "rwork" else 0)
    except BaseException as exc:
        pytest.fail(f"run() raised {exc!r} instead of StepFailed")
    else:
        pytest.fail("run() succeeded although a step raised")


# --- next() called wrongly at run time --------------------------------------------------------


async def validation_cause(flow: FlowSpec, **params: Any) -> FlowValidationError:
    exc = await step_failed(flow, **params)
    assert isinstance(exc.__cause__, FlowValidationError), exc.__cause__
    assert exc.run.status == "failed"
    return exc.__cause__


@pytest.mark.anyio
async def test_next_called_twice(store: str) -> None:
    cause = await validation_cause(ef.NextTwiceFlow(store=store, echo=False))
    assert cause.step == "start"
    assert "'start'" in str(cause)
    assert "twice" in str(cause)


@pytest.mark.anyio
async def test_next_not_called(store: str) -> None:
    cause = await validation_cause(ef.NextSkippedFlow(store=store, echo=False))
    assert cause.step == "start"
    assert "'start'" in str(cause)
    assert "self.next(self.end)" in str(cause)  # says what to call


@pytest.mark.anyio
async def test_next_called_unlike_the_static_graph(store: str) -> None:
    cause = await validation_cause(ef.NextElsewhereFlow(store=store, echo=False))
    assert cause.step == "start"
    assert "self.b" in str(cause) and "self.a" in str(cause)


@pytest.mark.anyio
async def test_next_called_in_end(store: str) -> None:
    cause = await validation_cause(ef.EndCallsNextFlow(store=store, echo=False))
    assert cause.step == "end"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("flow", "params"),
    [(ef.NextSkippedFlow, {"skip": False}), (ef.NextElsewhereFlow, {"jump": False})],
)
async def test_the_same_flows_succeed_when_next_is_called_as_written(
    store: str, flow: type[FlowSpec], params: dict[str, bool]
) -> None:
    run = await flow(store=store, echo=False).run(**params)
    assert run.successful


# --- foreach over a bad artifact ---------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("kind", "word"),
    [("missing", "things"), ("int", "int"), ("empty", "empty"), ("none", "NoneType")],
)
async def test_foreach_over_a_bad_artifact_names_step_and_artifact(
    store: str, kind: str, word: str
) -> None:
    exc = await step_failed(ef.ForeachOverFlow(store=store, echo=False), kind=kind)
    cause = exc.__cause__
    assert isinstance(cause, AsyncflowError)
    message = str(cause)
    assert "'start'" in message
    assert "things" in message
    assert word in message
    assert "/start/" in str(exc)
    assert "body" not in exc.run


@pytest.mark.anyio
async def test_foreach_over_a_good_or_inherited_artifact_works(store: str) -> None:
    ok = await ef.ForeachOverFlow(store=store, echo=False).run(kind="ok")
    assert [t.index for t in ok["body"]] == [0, 1]
    inherited = await ef.ForeachOverInheritedFlow(store=store, echo=False).run()
    assert inherited["join"].data.letters == ["a", "b"]


# --- an invalid flow is refused before anything is stored -------------------------------------


@pytest.mark.anyio
async def test_an_invalid_flow_is_refused_before_anything_is_stored(store: str) -> None:
    with pytest.raises(FlowValidationError) as info:
        await ef.InvalidFlow(store=store, echo=False).run()
    assert info.value.step == "middle"
    assert "middle" in str(info.value)
    assert not os.path.exists(store)

    await ef.ForeachOverInheritedFlow(store=store, echo=False).run()
    assert run_count(store) == 1
    with pytest.raises(FlowValidationError):
        await ef.InvalidFlow(store=store, echo=False).run()
    assert run_count(store) == 1
