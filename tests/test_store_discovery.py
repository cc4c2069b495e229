"""Finding the store, as Metaflow finds ``.metaflow`` (README, "Running" and "Reading runs"):
``$ASYNCFLOW_STORE``; else the nearest ``asyncflow.db`` in the current folder or a parent; else
``./asyncflow.db``. Inside a running step, a client call with no ``store=`` reads the run's
own store. Real flow files, real subprocesses, real store files in tmp folders."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from asyncflow import Flow

ROOT = Path(__file__).resolve().parent.parent

SEED = """
from asyncflow import FlowSpec, Parameter, step


class Seed(FlowSpec):
    where = Parameter("where", default="?")

    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    Seed()
"""

# A flow whose probing step asks the client, with no store=, which store it sees: the
# parameter `where` of the latest run of Seed there.
PROBE = {
    "thread": """
    @step
    def start(self):
        self.saw = Flow("Seed").latest_run.parameters["where"]
        self.next(self.end)
""",
    "async": """
    @step
    async def start(self):
        flow = await Flow.aopen("Seed")
        run = await flow.alatest_run()
        self.saw = (await run.aparameters())["where"]
        self.next(self.end)
""",
    "process": """
    @executor("process")
    @step
    def start(self):
        self.saw = Flow("Seed").latest_run.parameters["where"]
        self.next(self.end)
""",
}


def probe_source(kind: str) -> str:
    return (
        "from asyncflow import Flow, FlowSpec, executor, step\n\n\n"
        "class Probe(FlowSpec):"
        + PROBE[kind]
        + "\n    @step\n    def end(self):\n        pass\n\n\n"
        'if __name__ == "__main__":\n    Probe()\n'
    )


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k != "ASYNCFLOW_STORE"}
    return {**base, "PYTHONPATH": str(ROOT), **extra}


def python(
    cwd: Path, *args: str, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env(**(extra or {})),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out


def seed(tmp: Path) -> Path:
    path = tmp / "seed.py"
    path.write_text(SEED)
    return path


def where_in(store: Path) -> list[str]:
    return [run.parameters["where"] for run in Flow("Seed", store)]


def test_a_run_started_in_a_subfolder_of_the_project_uses_the_projects_store(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    deeper = project / "notebooks" / "deeper"
    deeper.mkdir(parents=True)
    flow = seed(project)
    python(project, str(flow), "run", "--where", "root")  # no store anywhere: created here
    assert (project / "asyncflow.db").is_file()
    python(deeper, str(flow), "run", "--where", "deeper")
    assert not (deeper / "asyncflow.db").exists()
    assert not (project / "notebooks" / "asyncflow.db").exists()
    assert sorted(where_in(project / "asyncflow.db")) == ["deeper", "root"]


def test_the_client_in_a_subfolder_of_the_project_reads_the_projects_store(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    notebooks = project / "notebooks"
    notebooks.mkdir(parents=True)
    python(project, str(seed(project)), "run", "--where", "root")
    read = "from asyncflow import Flow; print(Flow('Seed').latest_run.parameters['where'])"
    out = python(notebooks, "-c", read)
    assert out.stdout.strip() == "root"
    cli = python(notebooks, "-m", "asyncflow", "runs", "Seed")
    assert cli.stdout.splitlines()[1].split()[:3] == ["Seed", "1", "succeeded"]
    assert not (notebooks / "asyncflow.db").exists()


def test_the_nearest_store_up_the_tree_wins(tmp_path: Path) -> None:
    outer = tmp_path / "outer"
    inner = outer / "inner"
    sub = inner / "sub"
    sub.mkdir(parents=True)
    flow = seed(tmp_path)
    python(outer, str(flow), "run", "--where", "outer")
    python(inner, str(flow), "run", "--where", "inner")  # inner/ has none: outer's is used
    assert where_in(outer / "asyncflow.db") == ["inner", "outer"]
    python(inner, str(flow), "run", "--store", "asyncflow.db", "--where", "inner-own")
    python(sub, str(flow), "run", "--where", "sub")
    assert where_in(inner / "asyncflow.db") == ["sub", "inner-own"]
    assert len(where_in(outer / "asyncflow.db")) == 2


def test_asyncflow_store_wins_over_a_store_found_up_the_tree(tmp_path: Path) -> None:
    project = tmp_path / "project"
    sub = project / "sub"
    sub.mkdir(parents=True)
    flow = seed(project)
    python(project, str(flow), "run", "--where", "root")
    chosen = tmp_path / "chosen.db"
    python(sub, str(flow), "run", "--where", "env", extra={"ASYNCFLOW_STORE": str(chosen)})
    assert where_in(chosen) == ["env"]
    assert where_in(project / "asyncflow.db") == ["root"]


@pytest.mark.parametrize("kind", ["thread", "async", "process"])
def test_a_step_reading_the_client_without_a_store_reads_its_runs_own_store(
    tmp_path: Path, kind: str
) -> None:
    # The run's store is elsewhere (given as a relative --store); the folder it runs from
    # holds another store with a run of the same flow: the step must see the run's store.
    here = tmp_path / "here"
    elsewhere = tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    flow = seed(tmp_path)
    python(here, str(flow), "run", "--where", "decoy")  # ./asyncflow.db
    python(here, str(flow), "run", "--store", "../elsewhere/s.db", "--where", "run's own")
    probe = tmp_path / f"probe_{kind}.py"
    probe.write_text(probe_source(kind))
    python(here, str(probe), "run", "--store", "../elsewhere/s.db")
    saw = Flow("Probe", elsewhere / "s.db").latest_run.data.saw
    assert saw == "run's own"


def test_inside_a_step_the_runs_store_wins_over_asyncflow_store(tmp_path: Path) -> None:
    flow = seed(tmp_path)
    python(tmp_path, str(flow), "run", "--store", "env.db", "--where", "env")
    python(tmp_path, str(flow), "run", "--store", "own.db", "--where", "own")
    probe = tmp_path / "probe.py"
    probe.write_text(probe_source("thread"))
    extra = {"ASYNCFLOW_STORE": str(tmp_path / "env.db")}
    python(tmp_path, str(probe), "run", "--store", "own.db", extra=extra)
    assert Flow("Probe", tmp_path / "own.db").latest_run.data.saw == "own"


def test_outside_a_step_the_client_forgets_the_runs_store(tmp_path: Path) -> None:
    # After a run in this process, a client call with no store= is back to the usual rule.
    here = tmp_path / "here"
    here.mkdir()
    flow = seed(tmp_path)
    python(here, str(flow), "run", "--where", "local")
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        sys.path.insert(0, {str(tmp_path)!r})
        from probe import Probe
        from asyncflow import Flow

        asyncio.run(Probe(store={str(tmp_path / "own.db")!r}).run())
        print(Flow("Seed").latest_run.parameters["where"])
        """
    )
    python(tmp_path, str(seed(tmp_path)), "run", "--store", "own.db", "--where", "own")
    (tmp_path / "probe.py").write_text(probe_source("thread"))
    out = python(here, "-c", script)
    assert out.stdout.strip().splitlines()[-1] == "local"
    assert Flow("Probe", tmp_path / "own.db").latest_run.data.saw == "own"
