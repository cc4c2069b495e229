"""The flow file's command line as Metaflow users type it (issue 11): `dump` and `logs` with
Metaflow's pathspecs, the scheduler and cloud commands refused in one line, and a misused
decorator reported as one line with exit code 2 (README, "Coming from Metaflow")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests._mfcorpus import place, run_flow

ROOT = Path(__file__).resolve().parents[1]
SCHEDULERS = ["argo-workflows", "step-functions", "airflow", "batch", "kubernetes"]


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("plain")
    done = run_flow("refused_cmd_flow.py", "run", cwd=folder)
    assert done.returncode == 0, done.stderr
    return folder


def test_dump_prints_a_tasks_artifacts_by_metaflows_pathspec(ran: Path) -> None:
    done = run_flow("refused_cmd_flow.py", "dump", "1/start/1", cwd=ran)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["Task PlainFlow/1/start/1", "  greeting = 'hello'"]
    one = run_flow("refused_cmd_flow.py", "dump", "1/start/1/greeting", cwd=ran)
    assert one.stdout == "hello\n"
    step = run_flow("refused_cmd_flow.py", "dump", "PlainFlow/1/start", cwd=ran)
    assert step.stdout.splitlines()[0] == "Task PlainFlow/1/start/1"


def test_logs_prints_what_tasks_wrote(ran: Path) -> None:
    done = run_flow("refused_cmd_flow.py", "logs", "1/start/1", cwd=ran)
    assert done.returncode == 0 and done.stdout == "starting\n"
    step = run_flow("refused_cmd_flow.py", "logs", "1/end", "--stdout", cwd=ran)
    assert step.stdout == "[PlainFlow/1/end/2] the end\n"


def test_dump_and_logs_find_the_store_as_run_does(ran: Path) -> None:
    sub = ran / "notebooks"
    place("refused_cmd_flow.py", sub)
    done = run_flow("refused_cmd_flow.py", "logs", "1/start", cwd=sub)  # the project's store
    assert done.stdout == "[PlainFlow/1/start/1] starting\n"
    other = run_flow(
        "refused_cmd_flow.py", "--store", str(ran / "none.db"), "dump", "1/start/1", cwd=ran
    )
    assert other.returncode == 2 and str(ran / "none.db") in other.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["logs", "7/start"], "has no run 7"),
        (["dump", "1/nostep/1"], "nostep"),
        (["dump", "start"], "bad pathspec 'start': expected RUN/STEP[/TASK[/ARTIFACT]]"),
        (["logs", "OtherFlow/1/start"], "'OtherFlow' is not a run id of PlainFlow"),
    ],
)
def test_a_bad_pathspec_is_one_line_and_exit_2(ran: Path, args: list[str], says: str) -> None:
    done = run_flow("refused_cmd_flow.py", *args, cwd=ran)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and says in done.stderr, done.stderr


@pytest.mark.parametrize("command", SCHEDULERS)
def test_scheduler_and_cloud_commands_are_refused_in_one_line(tmp_path: Path, command: str) -> None:
    done = run_flow("refused_cmd_flow.py", command, "create", "--only-json", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
    assert f"`{command}`" in done.stderr and "await XFlow().run()" in done.stderr
    assert not (tmp_path / "asyncflow.db").exists()


def test_a_misused_decorator_in_a_flow_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = run_flow("bad_decorator_flow.py", "run", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == (
        "error: @retry(times=-1): times must be a whole number >= 0 (extra attempts).\n"
    )


def test_a_bug_in_a_flow_files_own_code_keeps_its_traceback(tmp_path: Path) -> None:
    flow = place("bad_decorator_flow.py", tmp_path)
    flow.write_text(flow.read_text().replace("@retry(times=-1)", "@retry(times=1 // 0)"))
    done = run_flow("bad_decorator_flow.py", "run", cwd=tmp_path)
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "ZeroDivisionError" in done.stderr


def test_an_asyncflow_error_raised_by_a_library_keeps_its_traceback(tmp_path: Path) -> None:
    # Not the flow file's own definition: a module it imports fails.
    (tmp_path / "helper.py").write_text("from asyncflow import retry\n\nretry(times=-1)\n")
    (tmp_path / "main.py").write_text("import helper\n")
    done = run_flow("main.py", cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" in done.stderr


def test_dump_never_unpickles_a_value_nobody_vouches_for(tmp_path: Path) -> None:
    # Another user's run (their key signed its pickles) stored an Alarm: unpickling it would
    # create the file `alarm`. `dump` shows every other artifact and says why not this one.
    store, alarm = tmp_path / "theirs.db", tmp_path / "alarm"
    code = (
        "import asyncio\nfrom tests.flows.trust_flows import TrustFlow\n"
        f"asyncio.run(TrustFlow(store={str(store)!r}, echo=False).run(alarm={str(alarm)!r}))\n"
    )
    env = {**os.environ, "ASYNCFLOW_KEY_FILE": str(tmp_path / "other" / "key")}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=120)
    assert not alarm.exists()
    flow = tmp_path / "trust_flow.py"
    flow.write_text(
        "from tests.flows.trust_flows import TrustFlow\n\n"
        'if __name__ == "__main__":\n    TrustFlow()\n'
    )
    tests_importable = {"PYTHONPATH": str(ROOT)}
    done = run_flow(
        "trust_flow.py",
        "--store",
        str(store),
        "dump",
        "1/start/1",
        cwd=tmp_path,
        env=tests_importable,
    )
    assert done.returncode == 0, done.stderr
    assert "  numbers = [1, 2, 3]" in done.stdout
    evil = next(line for line in done.stdout.splitlines() if line.startswith("  evil = "))
    assert "<cannot load:" in evil and "signature" in evil
    whole = run_flow(
        "trust_flow.py",
        "--store",
        str(store),
        "dump",
        "1/start/1/evil",
        cwd=tmp_path,
        env=tests_importable,
    )
    assert whole.returncode == 2 and "signature" in whole.stderr
    assert not alarm.exists()
