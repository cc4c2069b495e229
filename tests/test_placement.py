"""Metaflow's "where and how a step runs" decorators, with their local meanings:
@resources (recorded, typed, a hint), @environment (set in the task's worker process, restored
after), @kubernetes/@batch (accepted, run here, one warning per run), and ``--with``.

The corpus flows (tests/mfcorpus) run as a user runs them, ``python flow.py ...``; the rest
are in-process flows defined inside their tests.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import pytest

from asyncflow import (
    Flow,
    FlowSpec,
    FlowValidationError,
    Resources,
    RunsLocallyWarning,
    batch,
    current,
    environment,
    executor,
    kubernetes,
    resources,
    retry,
    step,
)
from asyncflow._spec._step import step_info
from tests._mfcorpus import run_flow

pytestmark = pytest.mark.anyio


def _latest(name: str, folder: Path) -> Any:
    return Flow(name, store=str(folder / "asyncflow.db")).latest_run


# --- @resources ------------------------------------------------------------------------------


def test_resources_are_recorded_on_every_task_typed_and_read_back(tmp_path: Path) -> None:
    done = run_flow("resources_flow.py", "run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run = _latest("ResourcesFlow", tmp_path)
    assert run["start"].task.resources == Resources(cpu=2, memory=8192, gpu=0)
    # @kubernetes(cpu=4) raises @resources(memory=1024)'s cpu, as Metaflow combines them.
    squares = list(run["square"].tasks())
    assert len(squares) == 3
    assert {t.resources for t in squares} == {Resources(cpu=4, memory=1024)}
    assert run["join"].task.resources is None  # declared none
    assert isinstance(run["start"].task.resources.cpu, int)


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ({"cpu": 0}, "cpu=0"),
        ({"cpu": -2}, "cpu=-2"),
        ({"memory": "lots"}, "memory='lots'"),
        ({"gpu": 1.5}, "gpu=1.5"),
        ({"cpu": True}, "cpu=True"),
        ({"disk": float("nan")}, "disk=nan"),
    ],
)
def test_resources_refuse_nonsense_naming_the_step(given: dict[str, Any], shown: str) -> None:
    with pytest.raises(FlowValidationError) as raised:

        class Bad(FlowSpec):
            @resources(**given)
            @step
            def start(self) -> None:
                self.next(self.end)

            @step
            def end(self) -> None:
                pass

    assert shown in str(raised.value) and "'start'" in str(raised.value)


def test_resources_take_numbers_written_as_strings_and_bare_means_the_defaults() -> None:
    class Written(FlowSpec):
        @resources(memory="16000", cpu="0.5")
        @step
        def start(self) -> None:
            self.next(self.end)

        @resources
        @step
        def end(self) -> None:
            pass

    start, end = step_info(Written.start), step_info(Written.end)
    assert start is not None and end is not None
    assert start.resources == Resources(cpu=0.5, memory=16000)
    assert end.resources == Resources()


# --- @environment ----------------------------------------------------------------------------


def test_environment_step_sees_its_variables_and_the_coordinator_never_does(
    tmp_path: Path,
) -> None:
    done = run_flow("environment_flow.py", "run", "--worker-processes", "1", cwd=tmp_path, env={})
    assert done.returncode == 0, done.stderr
    end = _latest("EnvironmentFlow", tmp_path)["end"].task.data
    assert end.before is None  # not set before the step
    assert (end.greeting, end.mode) == ("hello", "corpus")
    assert end.child == "hello"  # a program the step starts inherits them
    assert end.greet_pid != end.coordinator_pid  # run in a worker process, not a thread
    # The same worker ran the next task: it restored the variables after the first.
    assert end.after_pid == end.greet_pid
    assert end.after_greeting is None
    assert end.end_greeting is None  # the coordinator's environment is unchanged


async def test_environment_restores_a_variable_the_worker_had_before(store: str) -> None:
    os.environ["AF_PLACEMENT_KEPT"] = "outer"  # inherited by the worker processes
    try:

        class Restore(FlowSpec):
            @environment(vars={"AF_PLACEMENT_KEPT": "inner"})
            @step
            def start(self) -> None:
                self.inside = os.environ["AF_PLACEMENT_KEPT"]
                self.next(self.end)

            @executor("process")
            @step
            def end(self) -> None:
                self.after = os.environ.get("AF_PLACEMENT_KEPT")

        run = await Restore(store, processes=1).run()
    finally:
        del os.environ["AF_PLACEMENT_KEPT"]
    assert run["start"].task.data.inside == "inner"
    assert run["end"].task.data.after == "outer"


def test_environment_on_a_coroutine_step_is_refused_saying_why() -> None:
    with pytest.raises(FlowValidationError, match="async def step: environment variables"):

        class AsyncEnv(FlowSpec):
            @environment(vars={"A": "1"})
            @step
            async def start(self) -> None:
                self.next(self.end)

            @step
            def end(self) -> None:
                pass


@pytest.mark.parametrize("thread_above", [True, False])
def test_environment_with_the_thread_executor_is_refused_in_either_order(
    thread_above: bool,
) -> None:
    def both(func: Any) -> Any:
        if thread_above:
            return executor("thread")(environment(vars={"A": "1"})(func))
        return environment(vars={"A": "1"})(executor("thread")(func))

    with pytest.raises(FlowValidationError, match=r'@executor\("thread"\)') as raised:

        class ThreadEnv(FlowSpec):
            @both
            @step
            def start(self) -> None:
                self.next(self.end)

            @step
            def end(self) -> None:
                pass

    assert "'start'" in str(raised.value)


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ({"PORT": 8080}, "PORT=8080, of type int"),
        ({"": "x"}, "names the variable ''"),
        ({"A=B": "x"}, "names the variable 'A=B'"),
        ([("A", "1")], "is of type list"),
    ],
)
def test_environment_values_must_be_strings_as_in_metaflow(given: Any, said: str) -> None:
    with pytest.raises(FlowValidationError) as raised:

        class BadVars(FlowSpec):
            @environment(vars=given)
            @step
            def start(self) -> None:
                self.next(self.end)

            @step
            def end(self) -> None:
                pass

    assert said in str(raised.value)


# --- @kubernetes, @batch ---------------------------------------------------------------------


def test_kubernetes_and_batch_run_here_and_say_so_exactly_once(tmp_path: Path) -> None:
    done = run_flow("kubernetes_flow.py", "run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("does not send steps to") == 1, done.stderr
    warning = next(line for line in done.stderr.splitlines() if "does not send steps to" in line)
    for name in ("start (@kubernetes)", "train (@kubernetes)", "score (@batch)"):
        assert name in warning
    assert "Kubernetes" in warning and "AWS Batch" in warning
    assert "worker threads of this process" in warning
    run = _latest("KubernetesFlow", tmp_path)
    assert run.successful and run["score"].task.data.x == 20
    assert run["train"].task.resources == Resources(cpu=2, memory=8192)


async def test_each_embedded_run_warns_once_even_when_the_text_repeats(store: str) -> None:
    class Kube(FlowSpec):
        @kubernetes(cpu=2)
        @step
        def start(self) -> None:
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")
        await Kube(store).run()
        await Kube(store).run()
    mine = [w for w in seen if issubclass(w.category, RunsLocallyWarning)]
    assert len(mine) == 2
    assert "start (@kubernetes)" in str(mine[0].message)


async def test_no_warning_without_kubernetes_or_batch(store: str) -> None:
    class Plain(FlowSpec):
        @resources(cpu=2)
        @step
        def start(self) -> None:
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    with warnings.catch_warnings():
        warnings.simplefilter("error", RunsLocallyWarning)
        await Plain(store).run()


async def test_the_warning_obeys_filters_and_an_error_filter_stores_nothing(store: str) -> None:
    class Kube(FlowSpec):
        @batch
        @step
        def start(self) -> None:
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    with warnings.catch_warnings():
        warnings.simplefilter("error", RunsLocallyWarning)
        with pytest.raises(RunsLocallyWarning, match=r"start \(@batch\)"):
            await Kube(store).run()
    assert not os.path.exists(store)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RunsLocallyWarning)
        run = await Kube(store).run()
    assert run.successful


def test_kubernetes_and_batch_on_one_step_are_refused() -> None:
    with pytest.raises(FlowValidationError, match="both @kubernetes and @batch"):

        class Both(FlowSpec):
            @batch
            @kubernetes
            @step
            def start(self) -> None:
                self.next(self.end)

            @step
            def end(self) -> None:
                pass


def test_kubernetes_accepts_any_argument_and_checks_its_resources() -> None:
    class Many(FlowSpec):
        @kubernetes(cpu=1, image="x", secrets=["s"], tolerations=[{"k": "v"}], use_tmpfs=True)
        @step
        def start(self) -> None:
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    info = step_info(Many.start)
    assert info is not None and info.compute is not None
    assert dict(info.compute.attributes)["image"] == "x"
    with pytest.raises(FlowValidationError, match="memory='big'"):

        class BadKube(FlowSpec):
            @kubernetes(memory="big")
            @step
            def start(self) -> None:
                self.next(self.end)

            @step
            def end(self) -> None:
                pass


# --- --with ----------------------------------------------------------------------------------


def test_with_after_run_adds_the_decorator_to_every_step_that_lacks_it(tmp_path: Path) -> None:
    done = run_flow("resources_flow.py", "run", "--with", "resources:cpu=3", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run = _latest("ResourcesFlow", tmp_path)
    assert run["start"].task.resources == Resources(cpu=2, memory=8192, gpu=0)  # its own
    assert run["join"].task.resources == Resources(cpu=3)  # added
    assert run["end"].task.resources == Resources(cpu=3)


def test_with_before_run_as_metaflow_allows_and_warns_once(tmp_path: Path) -> None:
    done = run_flow(
        "environment_flow.py",
        "--with",
        "kubernetes:cpu=2,memory=4096",
        "run",
        "--worker-processes",
        "1",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("does not send steps to") == 1, done.stderr
    warning = next(line for line in done.stderr.splitlines() if "does not send steps to" in line)
    # greet has @environment, so it runs on the process pool; after chose it.
    assert "greet (@kubernetes), after (@kubernetes) on the process pool" in warning
    run = _latest("EnvironmentFlow", tmp_path)
    assert run["end"].task.resources == Resources(cpu=2, memory=4096)


def test_with_environment_sets_the_variables_for_every_step_that_lacks_it(
    tmp_path: Path,
) -> None:
    done = run_flow(
        "environment_flow.py",
        "run",
        "--worker-processes",
        "1",
        "--with",
        'environment:vars={"AF_GREETING": "from --with"}',
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    end = _latest("EnvironmentFlow", tmp_path)["end"].task.data
    assert end.before == "from --with"  # start got it
    assert end.greeting == "hello"  # greet kept its own
    assert end.end_greeting == "from --with"
    assert end.coordinator_pid == end.greet_pid  # end ran in the (one) worker process too
    assert "AF_GREETING" not in os.environ


def test_check_applies_with_and_reports_what_it_refuses(tmp_path: Path) -> None:
    fine = run_flow("resources_flow.py", "--with", "retry:times=2", "check", cwd=tmp_path)
    assert fine.returncode == 0 and "is valid" in fine.stdout
    bad = run_flow("resources_flow.py", "--with", "resources:gpu=0.5", "check", cwd=tmp_path)
    assert bad.returncode == 2 and "gpu=0.5" in bad.stderr


def test_task_resources_of_a_tampered_record_are_none_not_an_error(tmp_path: Path) -> None:
    import json
    import sqlite3

    done = run_flow("resources_flow.py", "run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    path = tmp_path / "asyncflow.db"
    for garbage in ({"cpu": "lots"}, {"cpu": [1]}, "x", {"memory": 1e400}, {"gpu": True}):
        with sqlite3.connect(path) as conn:
            (text,) = conn.execute("SELECT graph FROM runs").fetchone()
            graph = json.loads(text)
            graph["steps"][0]["resources"] = garbage
            conn.execute("UPDATE runs SET graph = ?", (json.dumps(graph),))
        conn.close()
        assert _latest("ResourcesFlow", tmp_path)["start"].task.resources is None


def test_with_retry_makes_a_flaky_step_retry(tmp_path: Path) -> None:
    flow = tmp_path / "flaky_flow.py"
    flow.write_text(
        "from asyncflow import FlowSpec, current, step\n\n\n"
        "class FlakyFlow(FlowSpec):\n"
        "    @step\n"
        "    def start(self):\n"
        "        if current.retry_count == 0:\n"
        "            raise RuntimeError('first attempt fails')\n"
        "        self.attempt = current.retry_count\n"
        "        self.next(self.end)\n\n"
        "    @step\n"
        "    def end(self):\n"
        "        pass\n\n\n"
        'if __name__ == "__main__":\n'
        "    FlakyFlow()\n"
    )
    failed = run_flow("flaky_flow.py", "run", cwd=tmp_path)
    assert failed.returncode == 1
    done = run_flow("flaky_flow.py", "run", "--with", "retry:times=1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert _latest("FlakyFlow", tmp_path)["start"].task.data.attempt == 1
    # Before `resume` too: the failed first run is resumed with a retry.
    resumed = run_flow(
        "flaky_flow.py", "--with", "retry:times=1", "resume", "--origin-run-id", "1", cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr
    run = _latest("FlakyFlow", tmp_path)
    assert run.origin_run_id == "1" and run["start"].task.data.attempt == 1


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        ("gpu_please", "unknown decorator 'gpu_please'"),
        ("retry:times", "'times' in 'retry:times' is not key=value"),
        ("resources:=2", "'=2' in 'resources:=2' is not key=value"),
    ],
)
def test_with_an_unknown_name_or_bad_argument_is_one_usage_line(
    tmp_path: Path, spec: str, said: str
) -> None:
    done = run_flow("resources_flow.py", "run", "--with", spec, cwd=tmp_path)
    assert done.returncode == 2
    assert said in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "asyncflow.db").exists()  # nothing ran


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        ("retry:tries=2", "@retry takes times, minutes_between_retries"),
        ("resources:cpu=-1", "@resources(cpu=-1) on step 'join'"),
        ("environment:vars=1", "is of type int"),
        ("executor:name=gpu", "must be one of"),
    ],
)
def test_with_a_value_the_decorator_refuses_is_one_error_line(
    tmp_path: Path, spec: str, said: str
) -> None:
    done = run_flow("resources_flow.py", "run", "--with", spec, cwd=tmp_path)
    assert done.returncode == 2
    assert said in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith(f"error: --with {spec}")


def test_with_environment_on_a_coroutine_step_is_refused(tmp_path: Path) -> None:
    flow = tmp_path / "async_flow.py"
    flow.write_text(
        "from asyncflow import FlowSpec, step\n\n\n"
        "class AsyncFlow(FlowSpec):\n"
        "    @step\n"
        "    async def start(self):\n"
        "        self.next(self.end)\n\n"
        "    @step\n"
        "    def end(self):\n"
        "        pass\n\n\n"
        'if __name__ == "__main__":\n'
        "    AsyncFlow()\n"
    )
    done = run_flow("async_flow.py", "run", "--with", 'environment:vars={"A": "1"}', cwd=tmp_path)
    assert done.returncode == 2
    assert "async def step: environment variables" in done.stderr


def test_with_never_changes_the_users_class(tmp_path: Path) -> None:
    class Untouched(FlowSpec):
        @retry(times=5)
        @step
        def start(self) -> None:
            self.seen = current.retry_count
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    before = {name: step_info(getattr(Untouched, name)) for name in ("start", "end")}
    store = str(tmp_path / "s.db")
    with pytest.raises(SystemExit) as ended:
        Untouched.main(["run", "--quiet", "--store", store, "--with", "retry:times=1"])
    assert ended.value.code == 0
    after = {name: step_info(getattr(Untouched, name)) for name in ("start", "end")}
    assert after == before
    end = after["end"]
    assert end is not None and end.retry is None
    start = after["start"]
    assert start is not None and start.retry is not None and start.retry.times == 5
