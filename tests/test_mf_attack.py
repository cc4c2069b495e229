"""Metaflow flows written as Metaflow's docs write them, with only the imports changed, run
from a shell (docs/metaflow.md, README "Coming from Metaflow"). Each test is named after the
promise it checks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if k != "ASYNCFLOW_STORE"}
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), environ.get("PYTHONPATH")]))
    environ.update(extra or {})
    return environ


def write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


def run(folder: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=folder,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


PARAM_FLOW = """\
    from asyncflow import FlowSpec, Parameter, step


    class ParamFlow(FlowSpec):
        alpha = Parameter("alpha", help="Learning rate", default=0.01, show_default=True)

        @step
        def start(self):
            print("alpha", self.alpha)
            self.next(self.end)

        @step
        def end(self):
            pass


    if __name__ == "__main__":
        ParamFlow()
"""


def test_parameter_takes_metaflows_show_default_argument(tmp_path: Path) -> None:
    # Metaflow: Parameter(name, default, type, help, required, show_default, **kwargs).
    write(tmp_path, "param_flow.py", PARAM_FLOW)
    done = run(tmp_path, "param_flow.py", "run", "--alpha", "0.5")
    assert done.returncode == 0, done.stderr
    assert "alpha 0.5" in done.stdout
    helped = run(tmp_path, "param_flow.py", "run", "--help")
    assert helped.returncode == 0, helped.stderr
    assert "Learning rate" in helped.stdout


HYPHEN_FLOW = """\
    from asyncflow import FlowSpec, Parameter, step


    class HyphenFlow(FlowSpec):
        batch_size = Parameter("batch-size", help="Batch size", default=100, type=int)

        @step
        def start(self):
            print("batch", self.batch_size)
            self.next(self.end)

        @step
        def end(self):
            pass


    if __name__ == "__main__":
        HyphenFlow()
"""


@pytest.mark.xfail(
    strict=True,
    reason="a Parameter's name must be a Python identifier (README), while Metaflow takes "
    "Parameter('batch-size') as --batch-size and docs/metaflow.md says Parameter is 'same'",
)
def test_parameter_with_a_hyphenated_name_runs_as_in_metaflow(tmp_path: Path) -> None:
    write(tmp_path, "hyphen_flow.py", HYPHEN_FLOW)
    done = run(tmp_path, "hyphen_flow.py", "run", "--batch-size", "200")
    assert done.returncode == 0, done.stderr
    assert "batch 200" in done.stdout


def test_a_badly_named_parameter_is_named_even_when_its_option_is_given(tmp_path: Path) -> None:
    # README: a misused declaration stops with that error on one line; giving the option the
    # user meant must not turn it into "unrecognized arguments".
    write(tmp_path, "hyphen_flow.py", HYPHEN_FLOW)
    done = run(tmp_path, "hyphen_flow.py", "run", "--batch-size", "200")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a Python identifier" in lines[0], done.stderr


CATCH_FLOW = """\
    from asyncflow import FlowSpec, catch, retry, step


    class CatchDivideByZeroFlow(FlowSpec):
        @step
        def start(self):
            self.divisors = [0, 1, 2]
            self.next(self.divide, foreach="divisors")

        @catch(var="divide_failed")
        @retry(times=0)
        @step
        def divide(self):
            self.res = 10 / self.input
            self.next(self.join)

        @step
        def join(self, inputs):
            self.results = [inp.res for inp in inputs if not inp.divide_failed]
            self.failures = [
                (inp.divide_failed.type, inp.divide_failed.exception)
                for inp in inputs
                if inp.divide_failed
            ]
            self.next(self.end)

        @step
        def end(self):
            print("failures", self.failures)


    if __name__ == "__main__":
        CatchDivideByZeroFlow()
"""


@pytest.mark.xfail(
    strict=True,
    reason="@catch(var=) stores a dict {type, message, traceback}; Metaflow stores an "
    "exception object with .exception, .type and .stacktrace, which Metaflow flows read, "
    "while docs/metaflow.md says catch is 'same'",
)
def test_catch_var_has_metaflows_exception_and_type_attributes(tmp_path: Path) -> None:
    write(tmp_path, "catch_flow.py", CATCH_FLOW)
    done = run(tmp_path, "catch_flow.py", "run")
    assert done.returncode == 0, done.stderr
    assert "ZeroDivisionError" in done.stdout


CLIENT_FLOW = """\
    from asyncflow import FlowSpec, Parameter, step


    class ClientFlow(FlowSpec):
        alpha = Parameter("alpha", default=0.5)

        @step
        def start(self):
            self.x = 41
            self.next(self.end)

        @step
        def end(self):
            self.x += 1


    if __name__ == "__main__":
        ClientFlow()
"""


@pytest.fixture(scope="module")
def client_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("client")
    write(folder, "client_flow.py", CLIENT_FLOW)
    done = run(folder, "client_flow.py", "run")
    assert done.returncode == 0, done.stderr
    return folder


def test_task_artifacts_gives_data_artifacts_by_name(client_folder: Path) -> None:
    # docs/metaflow.md, Task: "same: data, artifacts, ..."; Metaflow: task.artifacts.x.data
    script = """\
        from asyncflow import Flow
        task = Flow("ClientFlow").latest_run["start"].task
        print(task.artifacts.x.data, task.artifacts.x.name)
        print(sorted(a.name for a in task.artifacts))
        print("x" in task.artifacts, "nope" in task.artifacts, len(task.artifacts))
        try:
            task.artifacts.nope
        except AttributeError:
            print("missing")
    """
    write(client_folder, "read_artifacts.py", script)
    done = run(client_folder, "read_artifacts.py")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["41 x", "['alpha', 'x']", "True False 2", "missing"]


@pytest.mark.parametrize(
    ("call", "same"),
    [
        ('Run("ClientFlow/1")', "Flow('ClientFlow')['1']"),
        ('Step("ClientFlow/1/start")', "Flow('ClientFlow')['1']['start']"),
        ('Task("ClientFlow/1/start/1")', "Flow('ClientFlow')['1']['start']['1']"),
        ('DataArtifact("ClientFlow/1/start/1/x")', "Flow('ClientFlow')['1']['start']['1']['x']"),
    ],
)
def test_client_object_by_pathspec_is_the_one_its_flow_gives(
    client_folder: Path, call: str, same: str
) -> None:
    # docs/metaflow.md: `Run("Flow/12")` by pathspec is "same" (issue 13): the object opened
    # by pathspec, from the default store, is the one reached from its flow.
    script = f"""\
        from asyncflow import DataArtifact, Flow, Run, Step, Task
        print({call} == {same}, repr({call}))
    """
    write(client_folder, "by_pathspec.py", script)
    done = run(client_folder, "by_pathspec.py")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("True "), done.stdout


K8S_FLOW = """\
    from asyncflow import FlowSpec, kubernetes, step


    class SmallPodFlow(FlowSpec):
        @kubernetes(cpu=0.25, memory=500)
        @step
        def start(self):
            self.next(self.end)

        @step
        def end(self):
            pass


    if __name__ == "__main__":
        SmallPodFlow()
"""


def test_kubernetes_cpu_and_memory_are_the_steps_resources_without_resources(
    tmp_path: Path,
) -> None:
    # docs/metaflow.md: @kubernetes "its cpu/memory/gpu count as the step's resources"; as in
    # Metaflow, without @resources the pod asks for what @kubernetes says, not @resources'
    # defaults (cpu 1, memory 4096).
    write(tmp_path, "small_pod_flow.py", K8S_FLOW)
    done = run(tmp_path, "small_pod_flow.py", "run")
    assert done.returncode == 0, done.stderr
    write(
        tmp_path,
        "read_resources.py",
        """\
        from asyncflow import Flow
        res = Flow("SmallPodFlow").latest_run["start"].task.resources
        print(res.cpu, res.memory)
        """,
    )
    read = run(tmp_path, "read_resources.py")
    assert read.stdout.split() == ["0.25", "500"], read.stdout + read.stderr


ENV_NUL_FLOW = """\
    from asyncflow import FlowSpec, environment, step


    class NulFlow(FlowSpec):
        @environment(vars={"A": "x\\x00y"})
        @step
        def start(self):
            self.next(self.end)

        @step
        def end(self):
            pass


    if __name__ == "__main__":
        NulFlow()
"""


def test_environment_value_with_nul_says_what_is_wrong(tmp_path: Path) -> None:
    # README: a misused decorator stops with that error on one line; the line must say what
    # is wrong: the value is a str, so "of type str; ... hold strings" sends the user nowhere.
    write(tmp_path, "nul_flow.py", ENV_NUL_FLOW)
    done = run(tmp_path, "nul_flow.py", "run")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "NUL" in lines[0] and "of type str" not in lines[0], lines[0]


SLOW_FLOW = """\
    import time

    from asyncflow import FlowSpec, step


    class SlowFlow(FlowSpec):
        @step
        def start(self):
            self.next(self.work)

        @step
        def work(self):
            print("working", flush=True)
            time.sleep(60)
            self.next(self.end)

        @step
        def end(self):
            print("finished")


    if __name__ == "__main__":
        SlowFlow()
"""


def test_ctrl_c_prints_a_resume_command_that_works(tmp_path: Path) -> None:
    # README: Ctrl-C "prints one line saying how to resume it". The line is a command: typed
    # as printed, it must resume the run, also from a store chosen with --store.
    write(tmp_path, "slow_flow.py", SLOW_FLOW)
    proc = subprocess.Popen(
        [sys.executable, "slow_flow.py", "--store", "other.db", "run"],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    for line in proc.stdout:
        if "working" in line or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    command = lines[0].split("`")[1]
    write(tmp_path, "slow_flow.py", SLOW_FLOW.replace("time.sleep(60)", "time.sleep(0)"))
    resumed = subprocess.run(
        command, shell=True, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120
    )
    assert resumed.returncode == 0, command + "\n" + resumed.stderr
    assert "finished" in resumed.stdout


PROJECT_SLOW_FLOW = (
    SLOW_FLOW.replace(
        "from asyncflow import FlowSpec, step",
        "from asyncflow import FlowSpec, current, project, step",
    )
    .replace("class SlowFlow(FlowSpec):", '@project(name="movies")\n    class SlowFlow(FlowSpec):')
    .replace('print("finished")', 'print("finished on", current.branch_name)')
)


def test_ctrl_c_resume_command_keeps_the_project_branch(tmp_path: Path) -> None:
    # The printed command resumes the run on its own @project branch (test.feat), not on the
    # user's branch, which `resume` without --branch would choose.
    write(tmp_path, "slow_flow.py", PROJECT_SLOW_FLOW)
    proc = subprocess.Popen(
        [sys.executable, "slow_flow.py", "--branch", "feat", "run"],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "working" in line:
            break
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    command = err.strip().splitlines()[0].split("`")[1]
    write(tmp_path, "slow_flow.py", PROJECT_SLOW_FLOW.replace("time.sleep(60)", "time.sleep(0)"))
    resumed = subprocess.run(
        command, shell=True, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120
    )
    assert resumed.returncode == 0, command + "\n" + resumed.stderr
    assert "finished on test.feat" in resumed.stdout, resumed.stdout


def test_run_id_file_receives_the_run_id(client_folder: Path) -> None:
    # docs/metaflow.md: `python flow.py run` is "same"; Metaflow's CI scripts learn the run id
    # with --run-id-file, on run and on resume.
    done = run(client_folder, "client_flow.py", "run", "--run-id-file", "run_id.txt")
    assert done.returncode == 0, done.stderr
    run_id = (client_folder / "run_id.txt").read_text()
    assert f"ClientFlow/{run_id} succeeded" in done.stdout
    again = run(client_folder, "client_flow.py", "resume", "--run-id-file", "resumed.txt")
    assert again.returncode == 0, again.stderr
    resumed = (client_folder / "resumed.txt").read_text()
    assert int(resumed) > int(run_id) and f"ClientFlow/{resumed} succeeded" in again.stdout
    missing = run(client_folder, "client_flow.py", "run", "--run-id-file", "no/such/dir/id")
    assert missing.returncode == 0 and missing.stderr.count("\n") == 1, missing.stderr


CARD_FLOW = """\
    from asyncflow import FlowSpec, card, current, step
    from asyncflow.cards import Image, Markdown, Table

    PNG = bytes.fromhex("89504e470d0a1a0a")


    class TableCardFlow(FlowSpec):
        @card(type="blank")
        @step
        def start(self):
            current.card.append(Markdown("# Scores"))
            table = Table([[0.91, 0.88]], headers=["train", "test"], disable_updates=True)
            current.card.append(table)
            current.card.append(Image(PNG, label="png", disable_updates=True))
            self.next(self.end)

        @step
        def end(self):
            print("done")


    if __name__ == "__main__":
        TableCardFlow()
"""


def test_card_components_take_metaflows_disable_updates_argument(tmp_path: Path) -> None:
    # docs/metaflow.md: cards.Table "same name and arguments"; Metaflow's Table and Image take
    # disable_updates=.
    write(tmp_path, "table_card_flow.py", CARD_FLOW)
    done = run(tmp_path, "table_card_flow.py", "run")
    assert done.returncode == 0, done.stderr
    assert "done" in done.stdout


def test_card_components_have_metaflows_from_constructors() -> None:
    # Once missing (issue 14 added them); what they store is tested in test_cards_store.py.
    from asyncflow.cards import Image, Table

    assert hasattr(Table, "from_dataframe") and hasattr(Image, "from_pil_image")


FAILING_FLOW = """
    from asyncflow import FlowSpec, step

    class BrokenFlow(FlowSpec):
        @step
        def start(self):
            raise ValueError("broken on purpose")
            self.next(self.end)

        @step
        def end(self):
            print("finished")

    if __name__ == "__main__":
        BrokenFlow()
"""


def test_a_failed_run_prints_a_resume_command_that_works(tmp_path: Path) -> None:
    # The one error line of a failed run says how to resume it: the exact command, with the
    # script's name and the --store the run used, typed as printed once the step is fixed.
    write(tmp_path, "broken flow.py", FAILING_FLOW)
    failed = run(tmp_path, "broken flow.py", "--store", "runs x.db", "run")
    assert failed.returncode == 1
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and "python flow.py" not in lines[0], failed.stderr
    command = lines[0].split("`")[-2]
    assert command.startswith("python 'broken flow.py'"), command
    write(
        tmp_path,
        "broken flow.py",
        FAILING_FLOW.replace('raise ValueError("broken on purpose")', "pass"),
    )
    resumed = subprocess.run(
        command, shell=True, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120
    )
    assert resumed.returncode == 0, command + "\n" + resumed.stderr
    assert "finished" in resumed.stdout and "resumed BrokenFlow/1" in resumed.stdout
