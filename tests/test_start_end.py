"""``@step(start=True)`` / ``@step(end=True)`` (Metaflow 2.19): first and last steps with
names of their own, a one-step flow, and the rules that keep one first and one last step.
Also Metaflow's mutators, which asyncflow imports and refuses when used."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import asyncflow
from asyncflow import Flow, FlowMutator, FlowSpec, FlowValidationError, StepMutator, retry, step
from tests._mfcorpus import run_flow
from tests.flows import start_end_flows as sef

FILE = sef.__file__


def _run(cls: type[FlowSpec], tmp: Path, **params: Any) -> Flow:
    store = str(tmp / "s.db")
    asyncio.run(cls(store=store, echo=False).run(**params))
    return Flow(cls.__name__, store)


def _refusal(cls: type[FlowSpec]) -> FlowValidationError:
    with pytest.raises(FlowValidationError) as info:
        cls._af_graph()
    return info.value


# --- what runs ------------------------------------------------------------------------------


def test_marked_first_and_last_steps_run_and_the_run_data_is_the_last_steps(
    tmp_path: Path,
) -> None:
    with _run(sef.Marked, tmp_path) as flow:
        run = flow.latest_run
        assert run is not None and run.successful
        assert [s.id for s in run] == ["begin", "work", "gather", "finish"]
        assert run.end_task.pathspec.split("/")[2] == "finish"
        assert run.data.total == 12
        assert run.data.names == ["begin", "finish"]  # current.step_name in each
        assert run.graph["start_step"] == "begin" and run.graph["end_step"] == "finish"


def test_a_one_step_flow_marked_start_and_end_runs_its_only_step(tmp_path: Path) -> None:
    graph = sef.OneStep._af_graph()
    assert graph.start_step == graph.end_step == "only"
    with _run(sef.OneStep, tmp_path) as flow:
        run = flow.latest_run
        assert run is not None and run.successful
        assert [s.id for s in run] == ["only"]
        assert run.data.answer == 42


def test_a_marked_first_step_and_an_end_found_by_its_name_make_a_flow(tmp_path: Path) -> None:
    graph = sef.MarkedStartNamedEnd._af_graph()
    assert (graph.start_step, graph.end_step) == ("begin", "end")
    with _run(sef.MarkedStartNamedEnd, tmp_path) as flow:
        run = flow.latest_run
        assert run is not None and run.data.x == 2


def test_marked_async_steps_run_on_the_loop(tmp_path: Path) -> None:
    with _run(sef.AsyncMarked, tmp_path) as flow:
        run = flow.latest_run
        assert run is not None and run.data.x == 2


def test_step_with_empty_parentheses_is_a_plain_step() -> None:
    class Parens(FlowSpec):
        @step()
        def start(self) -> None:
            self.next(self.end)

        @retry
        @step()
        def end(self) -> None:
            pass

    graph = Parens._af_graph()
    assert (graph.start_step, graph.end_step) == ("start", "end")
    assert not graph["start"].info.marked_start and graph["end"].info.retry is not None


def test_a_client_reading_a_run_stored_without_end_step_reads_its_end_step(
    tmp_path: Path,
) -> None:
    # Runs stored before custom last steps existed have no "end_step" in their graph.
    class Old(FlowSpec):
        @step
        def start(self) -> None:
            self.x = 5
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    _run(Old, tmp_path).close()
    with sqlite3.connect(tmp_path / "s.db") as conn:
        (text,) = conn.execute("SELECT graph FROM runs").fetchone()
        graph = json.loads(text)
        del graph["start_step"], graph["end_step"]
        conn.execute("UPDATE runs SET graph = ?", (json.dumps(graph),))
    with Flow("Old", str(tmp_path / "s.db")) as flow:
        run = flow.latest_run
        assert run is not None and run.data.x == 5


def test_a_run_that_did_not_reach_its_marked_last_step_says_so(tmp_path: Path) -> None:
    with pytest.raises(asyncflow.StepFailed):
        asyncio.run(sef.MarkedBreaks(store=str(tmp_path / "s.db"), echo=False).run())
    with Flow("MarkedBreaks", str(tmp_path / "s.db")) as flow:
        run = flow.latest_run
        assert run is not None
        with pytest.raises(asyncflow.ArtifactNotFoundError, match="did not reach its end step"):
            run.end_task  # noqa: B018


def test_show_and_mermaid_mark_the_first_and_last_steps() -> None:
    graph = sef.Marked._af_graph()
    text = graph.to_text()
    assert "step begin  (the first step: start=True)" in text
    assert "step finish  (the last step: end=True)" in text
    chart = graph.to_mermaid()
    assert 's_begin(["begin"])' in chart and 's_finish(["finish"])' in chart
    assert 's_work["work"]' in chart
    # A flow with the usual names shows as before.
    plain = sef.MarkedStartNamedEnd._af_graph().to_text()
    assert "(the last step" not in plain


# --- what is refused ------------------------------------------------------------------------


def test_two_steps_marked_start_are_refused_naming_both() -> None:
    err = _refusal(sef.TwoStarts)
    assert "marks 2 steps with @step(start=True)" in str(err)
    assert "'a'" in str(err) and "'b'" in str(err) and FILE in str(err)


def test_two_steps_marked_end_are_refused_naming_both() -> None:
    err = _refusal(sef.TwoEnds)
    assert "marks 2 steps with @step(end=True)" in str(err)
    assert "problems" not in str(err)  # not also "b does not end with self.next"


def test_a_step_named_start_beside_a_marked_first_step_is_refused() -> None:
    err = _refusal(sef.StartAndMarked)
    assert err.step == "start"
    assert "the flow's first step is 'begin'" in str(err)


def test_a_step_named_end_beside_a_marked_last_step_is_refused() -> None:
    err = _refusal(sef.EndAndMarked)
    assert "the flow's last step is 'finish'" in str(err)


def test_a_marked_first_step_that_takes_inputs_is_refused() -> None:
    err = _refusal(sef.MarkedStartJoins)
    assert err.step == "begin"
    assert "begin takes inputs, yet it is the first step" in str(err)
    assert "`def begin(self)`" in str(err)


def test_a_marked_last_step_that_calls_next_is_refused() -> None:
    err = _refusal(sef.MarkedEndGoesOn)
    assert "finish calls self.next(...), yet finish finishes the flow" in str(err)


def test_a_marked_last_step_that_is_a_join_is_refused() -> None:
    err = _refusal(sef.MarkedEndJoins)
    assert "finish takes inputs, yet finish cannot be a join" in str(err)
    assert "self.next(self.finish)" in str(err)


def test_a_marked_last_step_with_two_parents_is_refused() -> None:
    err = _refusal(sef.MarkedEndMeets)
    assert "finish has 2 parents (a, b)" in str(err)


def test_a_step_left_beside_a_one_step_flow_is_unreachable() -> None:
    err = _refusal(sef.OneStepAndMore)
    assert err.step == "stray" and "never reached from only" in str(err)


def test_a_marked_last_step_without_any_first_step_is_refused() -> None:
    err = _refusal(sef.MarkedEndOnly)
    assert "has no step named 'start'" in str(err)
    assert "@step(start=True)" in str(err)


def test_a_middle_step_without_next_names_the_marked_last_step() -> None:
    err = _refusal(sef.MiddleStops)
    assert err.step == "middle" and "only finish has none" in str(err)


@pytest.mark.parametrize("kwargs", [{"start": 1}, {"end": "yes"}, {"start": None}])
def test_start_and_end_take_only_true_or_false(kwargs: dict[str, Any]) -> None:
    with pytest.raises(FlowValidationError, match="takes True or False"):
        step(**kwargs)


# --- mutators -------------------------------------------------------------------------------


class _Marking(FlowMutator):
    """Leaves a file behind if asyncflow ever calls one of its hooks."""

    marker: Path

    def init(self, *args: Any, **kwargs: Any) -> None:
        self.marker.touch()

    def pre_mutate(self, mutable: Any) -> None:
        self.marker.touch()

    def mutate(self, mutable: Any) -> None:
        self.marker.touch()


def test_a_flow_mutator_on_a_flow_is_refused_at_class_definition(tmp_path: Path) -> None:
    _Marking.marker = tmp_path / "mutated"
    with pytest.raises(FlowValidationError, match="does not support Metaflow's mutators") as err:

        @_Marking
        class Bare(FlowSpec):
            @step
            def start(self) -> None:
                self.next(self.end)

            @step
            def end(self) -> None:
                pass

    assert "FlowMutator _Marking is used on flow" in str(err.value)
    assert "Bare" in str(err.value) and "Parameters in the class body" in str(err.value)
    with pytest.raises(FlowValidationError, match="FlowMutator _Marking is used on flow"):

        @_Marking(times=3)
        class WithArgs(FlowSpec):
            @step
            def start(self) -> None:
                self.next(self.end)

            @step
            def end(self) -> None:
                pass

    assert not _Marking.marker.exists()


def test_a_step_mutator_on_a_step_is_refused_at_class_definition() -> None:
    class AddRetry(StepMutator):
        pass

    with pytest.raises(FlowValidationError, match="StepMutator AddRetry is used on step") as err:

        class Bare(FlowSpec):
            @AddRetry
            @step
            def start(self) -> None:
                self.next(self.end)

            @step
            def end(self) -> None:
                pass

    assert err.value.step == "start" and "above @step" in str(err.value)
    with pytest.raises(FlowValidationError, match="StepMutator AddRetry is used on step"):

        class WithArgs(FlowSpec):
            @AddRetry(times=2)
            @step
            def start(self) -> None:
                self.next(self.end)

            @step
            def end(self) -> None:
                pass


# --- as a Metaflow user runs them -----------------------------------------------------------


def test_a_custom_first_and_last_step_flow_runs_shows_checks_and_resumes_as_a_script(
    tmp_path: Path,
) -> None:
    name = "custom_start_end_flow.py"
    shown = run_flow(name, "show", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "step load  (the first step: start=True)" in shown.stdout
    assert "step report  (the last step: end=True)" in shown.stdout
    checked = run_flow(name, "check", cwd=tmp_path)
    assert checked.returncode == 0 and "valid: 4 steps" in checked.stdout
    broke = run_flow(name, "run", cwd=tmp_path, env={"BREAK_SCORE": "1"})
    assert broke.returncode == 1 and "scoring broke on 2" in broke.stderr
    resumed = run_flow(name, "resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "total 60 from report" in resumed.stdout
    with Flow("CustomStartEndFlow", str(tmp_path / "asyncflow.db")) as flow:
        first, second = sorted(flow.runs(), key=lambda r: r.id)
        assert not first.successful and second.successful
        assert second.data.total == 60
        assert second.data.visited == ["load", "collect", "report"]
        assert second.end_task.pathspec.split("/")[2] == "report"
        with pytest.raises(asyncflow.ArtifactNotFoundError):
            first.data  # noqa: B018


def test_a_one_step_flow_runs_as_a_script(tmp_path: Path) -> None:
    done = run_flow("single_step_flow.py", "run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with Flow("SingleStepFlow", str(tmp_path / "asyncflow.db")) as flow:
        run = flow.latest_run
        assert run is not None
        assert run.data.answer == 42 and run.data.where == "only"


def test_a_script_using_a_flow_mutator_stops_before_anything_runs(tmp_path: Path) -> None:
    done = run_flow("mutator_flow.py", "run", cwd=tmp_path)
    assert done.returncode != 0
    assert "FlowMutator RetryEverything is used on flow MutatedFlow" in done.stderr
    assert not (tmp_path / "mutated").exists()
    assert not (tmp_path / "asyncflow.db").exists()


def test_marked_steps_run_on_the_process_executor(tmp_path: Path) -> None:
    # Worker processes rebuild the graph from the pickled steps: the marks travel with them.
    done = run_flow("custom_start_end_flow.py", "run", "--executor", "process", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with Flow("CustomStartEndFlow", str(tmp_path / "asyncflow.db")) as flow:
        run = flow.latest_run
        assert run is not None and run.data.total == 60
