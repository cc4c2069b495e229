"""Command-line conventions (issue 13, item 6): --version, options before the command as in
Metaflow, every printed command names the store it needs, and a join that forgot
merge_artifacts is told so."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import asyncflow
from asyncflow import ArtifactNotFoundError, Flow, FlowSpec, StepFailed, step
from tests._storefixture import T, write_run
from tests.flows import trust_flows as tf

ROOT = Path(__file__).resolve().parents[1]

FLOW = """
from asyncflow import FlowSpec, step

class HintFlow(FlowSpec):
    @step
    def start(self):
        self.x = 1
        self.items = [1, 2]
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.join)

    @step
    def b(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        print("x is", self.x)   # forgot self.merge_artifacts(inputs)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    HintFlow()
"""


def shell(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ASYNCFLOW_PROGRESS": "lines"}
    env.pop("ASYNCFLOW_STORE", None)
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env
    )


@pytest.fixture
def flow_file(tmp_path: Path) -> Path:
    path = tmp_path / "hint_flow.py"
    path.write_text(FLOW)
    return path


def test_version_from_both_command_lines(flow_file: Path) -> None:
    for args in (["-m", "asyncflow", "--version"], [str(flow_file), "--version"]):
        out = shell(*args, cwd=flow_file.parent)
        assert out.returncode == 0, out.stderr
        assert out.stdout == f"asyncflow {asyncflow.__version__}\n"


def test_options_before_the_command_work_for_every_command(flow_file: Path) -> None:
    here = flow_file.parent
    store = "x.db"
    out = shell(str(flow_file), "--store", store, "--quiet", "run", cwd=here)
    assert out.returncode == 1 and (here / store).exists()  # the join fails (see below)
    assert not (here / "asyncflow.db").exists()
    out = shell(str(flow_file), "--store", store, "dump", "1/start/1", cwd=here)
    assert out.returncode == 0 and "items" in out.stdout, out.stderr
    out = shell(str(flow_file), "--store", store, "logs", "1/join", cwd=here)
    assert out.returncode == 0, out.stderr
    out = shell(str(flow_file), "--store", store, "--quiet", "resume", cwd=here)
    assert out.returncode == 1 and "resume --origin-run-id 2 --store x.db" in out.stderr
    assert not (here / "asyncflow.db").exists()


# Which of the options Metaflow writes before the command each command also takes after it
# (README, "The command line"): a command takes after it only the options it uses.
AFTER = {
    "run": {"--store", "--quiet", "--with", "--config-value"},
    "resume": {"--store", "--quiet", "--with"},
    "dump 1/start/1": {"--store"},
    "logs 1/start": {"--store"},
    "spin start --run-id 1": {"--store", "--quiet"},
    "show": set(),
    "check": set(),
}
OPTIONS = {
    "--store": ["--store", "x.db"],
    "--quiet": ["--quiet"],
    "--with": ["--with", "retry"],
    "--config-value": ["--config-value", "cfg", "{}"],
}


@pytest.mark.parametrize("command", sorted(AFTER))
def test_options_after_the_command_are_those_it_uses(flow_file: Path, command: str) -> None:
    here = flow_file.parent
    shell(str(flow_file), "--store", "x.db", "--quiet", "run", cwd=here)  # run 1 (it fails)
    for option, words in OPTIONS.items():
        out = shell(str(flow_file), *command.split(), *words, cwd=here)
        refused = "unrecognized arguments" in out.stderr or "so it takes no" in out.stderr
        assert refused == (option not in AFTER[command]), (command, option, out.stderr)


def test_every_printed_command_names_its_store(flow_file: Path) -> None:
    here = flow_file.parent
    out = shell(str(flow_file), "--store", "hints.db", "run", cwd=here)
    assert out.returncode == 1
    shown = "`asyncflow show HintFlow/1/join/4 --store hints.db`"  # the path as given
    assert shown in out.stderr
    resume = f"`python {shlex.quote(str(flow_file))} resume --origin-run-id 1 --store hints.db`"
    assert resume in out.stderr
    # the printed command works as printed, with no asyncflow.db around to find instead
    show = shlex.split(shown.strip("`"))
    listed = shell("-m", "asyncflow", *show[1:], cwd=here)
    assert listed.returncode == 0 and "failed" in listed.stdout, listed.stderr


def test_a_printed_store_path_that_starts_with_a_dash_is_pasteable(flow_file: Path) -> None:
    # `--store -w.db` would be read as an option: the hints print ./-w.db.
    here = flow_file.parent
    out = shell(str(flow_file), "--store=-w.db", "run", cwd=here)
    assert out.returncode == 1 and (here / "-w.db").exists(), out.stderr
    shown = "`asyncflow show HintFlow/1/join/4 --store ./-w.db`"
    assert shown in out.stderr
    resume = f"`python {shlex.quote(str(flow_file))} resume --origin-run-id 1 --store ./-w.db`"
    assert resume in out.stderr
    listed = shell("-m", "asyncflow", *shlex.split(shown.strip("`"))[1:], cwd=here)
    assert listed.returncode == 0 and "failed" in listed.stdout, listed.stderr
    again = shell(*shlex.split(resume.strip("`"))[1:], "--quiet", cwd=here)
    assert again.returncode == 1 and "resume --origin-run-id 2 --store ./-w.db" in again.stderr


@pytest.mark.anyio
async def test_a_failed_runs_message_names_its_store_in_code(tmp_path: Path) -> None:
    class Fails(FlowSpec):
        @step(start=True, end=True)
        def start(self) -> None:
            raise RuntimeError("boom")

    path = tmp_path / "my runs.db"
    with pytest.raises(StepFailed) as failed:
        await Fails(store=str(path), echo=False).run()
    assert f"`asyncflow show Fails/1/start/1 --store '{path}'`" in str(failed.value)


def test_the_trust_hint_names_its_store(tmp_path: Path) -> None:
    path = str(tmp_path / "theirs.db")
    write_run(path, "Theirs", [T("end", artifacts={"point": tf.Point(3)})], trusted=False)
    with pytest.raises(asyncflow.UntrustedArtifactError) as refused:
        _ = Flow("Theirs", store=path)["1"].end_task.data.point
    assert f"`asyncflow trust Theirs/1 --store {path}`" in str(refused.value)


@pytest.mark.anyio
async def test_a_join_that_forgot_merge_artifacts_is_told_so(flow_file: Path) -> None:
    out = shell(str(flow_file), "run", "--store", "m.db", cwd=flow_file.parent)
    assert out.returncode == 1
    assert (
        "ArtifactNotFoundError: join step 'join' of HintFlow has no artifact 'x': its inputs "
        "have it (inputs.a.x, inputs.b.x), but a join starts with only the parameters. Call "
        "self.merge_artifacts(inputs) first" in out.stderr
    )
    assert "no earlier step set it" not in out.stderr


@pytest.mark.anyio
async def test_a_foreach_join_that_forgot_merge_artifacts_is_told_so(tmp_path: Path) -> None:
    class ForeachJoin(FlowSpec):
        @step
        def start(self) -> None:
            self.items = [1, 2, 3]
            self.next(self.work, foreach="items")

        @step
        def work(self) -> None:
            self.score = self.input
            self.next(self.join)

        @step
        def join(self, inputs: object) -> None:
            print(self.score)
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    with pytest.raises(StepFailed) as failed:
        await ForeachJoin(store=str(tmp_path / "f.db"), echo=False).run()
    cause = failed.value.__cause__
    assert isinstance(cause, ArtifactNotFoundError)
    assert "its inputs have it (inputs[0].score, inputs[1].score)" in str(cause)
    assert "self.merge_artifacts(inputs)" in str(cause)


def test_a_flow_run_as_a_module_is_told_to_resume_as_a_module(tmp_path: Path) -> None:
    # Found by an attacker: `python -m pkg.flow run` printed `python /abs/pkg/flow.py resume`,
    # which breaks a flow file with relative imports. The hint runs it as it was started.
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "helpers.py").write_text("FAIL = True\n")
    (pkg / "modflow.py").write_text(
        "from asyncflow import FlowSpec, step\n"
        "from .helpers import FAIL\n\n"
        "class ModFlow(FlowSpec):\n"
        "    @step\n"
        "    def start(self):\n"
        "        if FAIL:\n"
        "            raise ValueError('boom')\n"
        "        self.next(self.end)\n\n"
        "    @step\n"
        "    def end(self):\n"
        "        pass\n\n"
        "if __name__ == '__main__':\n"
        "    ModFlow()\n"
    )
    out = shell("-m", "pkg.modflow", "run", "--store", "m.db", cwd=tmp_path)
    assert out.returncode == 1
    hint = "python -m pkg.modflow resume --origin-run-id 1 --store m.db"
    assert f"(`{hint}`)" in out.stderr
    (pkg / "helpers.py").write_text("FAIL = False\n")
    again = shell(*shlex.split(hint)[1:], cwd=tmp_path)  # pasted as printed
    assert again.returncode == 0, again.stderr
