"""Every file in examples/ runs from the shell and leaves the artifacts it promises.

Each flow example is run as users would (``python examples/X.py run``) in a subprocess
whose working directory is a temporary folder, then read back with the sync client.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from asyncflow import Flow, Run

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TIMEOUT = 120


def run_python(
    cwd: Path, *argv: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python *argv`` in ``cwd`` without inheriting a store from the environment."""
    base = {k: v for k, v in os.environ.items() if k != "ASYNCFLOW_STORE"}
    return subprocess.run(
        [sys.executable, *argv],
        cwd=cwd,
        env=base | (env or {}),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def run_example(tmp_path: Path, name: str, *extra: str) -> Path:
    """``python examples/<name>.py run --store <tmp>/s.db --quiet``; return the store path."""
    store = tmp_path / "s.db"
    proc = run_python(
        tmp_path, str(EXAMPLES / f"{name}.py"), "run", "--store", str(store), "--quiet", *extra
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert re.fullmatch(r"Run \w+/\d+ succeeded in [\d.]+ s \(store: .*\)\n", proc.stdout), (
        proc.stdout
    )
    return store


def latest(flow_name: str, store: Path) -> Run:
    with Flow(flow_name, store=store) as flow:
        run = flow.latest_run
    assert run is not None and run.successful
    return run


# --- one check per example ------------------------------------------------------------------


def check_artifact_basics(store: Path) -> None:
    run = latest("ArtifactBasicsFlow", store)
    assert run.data.result == 15
    start = run["start"].task.data
    assert (start.count, start.experiment, start.data) == (42, "experiment_1", [1, 2, 3, 4, 5])
    assert start.config == {"model": "resnet", "lr": 0.001}
    assert "result" not in start  # set later, in process
    assert "count=42" in run["process"].task.stdout  # output is kept even with --quiet


def check_supported_types(store: Path) -> None:
    run = latest("SupportedTypesFlow", store)
    task = run["start"].task
    data = task.data
    assert (data.number, data.text, data.flag, data.value) == (42, "hello", True, 3.14)
    assert type(data.tuple_data) is tuple and data.tuple_data == (1, 2, 3)
    assert type(data.set_data) is set and data.set_data == {1, 2, 3}
    assert data.nested["models"][1] == {"name": "model_b", "score": 0.93}
    assert data.matrix.dtype == np.int32 and data.matrix.tolist() == [[1, 2], [3, 4]]
    assert data.model.predict(2.0) == 2.0  # a class defined in the example, by value
    assert (task["number"].encoding, task["matrix"].encoding) == ("msgpack", "numpy")
    assert task["model"].encoding == "pickle"
    try:
        import pandas  # noqa: F401
    except ImportError:
        assert "dataframe" not in data
        assert "pandas is not installed" in task.stdout
    else:
        assert data.dataframe["B"].tolist() == [4, 5, 6]


def check_ephemeral(store: Path) -> None:
    run = latest("EphemeralFlow", store)
    assert run.data.result.startswith("permanent")
    assert run.data.temp_visible is False
    assert set(run["start"].task.data) == {"result"}


def check_include_file(store: Path) -> None:
    run = latest("IncludeFileFlow", store)
    assert run.data.total_population == 1_110_000
    assert run.data.densest_city == "Porto"
    assert [r["city"] for r in run.data.rows] == ["Lisbon", "Porto", "Braga", "Coimbra"]
    # The default path is next to the example, although the run's cwd was elsewhere.
    assert run.parameters["data"] == (EXAMPLES / "data.csv").read_text()


def check_branches(store: Path) -> None:
    run = latest("BranchesFlow", store)
    join = run["join"].task.data
    assert (join.result_a, join.result_b, join.sum_seen_by_a) == (15, 5, 15)
    assert join.shared_data == [1, 2, 3, 4, 5]
    assert "result_b" not in run["branch_a"].task.data


def check_conflict_resolution(store: Path) -> None:
    run = latest("ConflictResolutionFlow", store)
    assert run.data.conflicts == ["model_score"]
    assert run.data.model_score == 0.95
    assert (run.data.trees, run.data.layers, run.data.dataset) == (100, 3, "iris")


def check_foreach(store: Path) -> None:
    run = latest("ForeachFlow", store)
    assert run.data.all_processed == ["Processed A", "Processed B", "Processed C"]
    assert run.data.all_scores == [0.25, 0.5, 0.75]
    assert run.data.avg_score == 0.5
    tasks = list(run["process"])
    assert [t.index for t in tasks] == [0, 1, 2]
    assert "input" not in tasks[0].data and "index" not in tasks[0].data


def check_report_demo(store: Path) -> None:
    run = latest("ReportDemoFlow", store)
    assert [acc for acc, _ in run.data.ranking] == [0.8, 0.75, 0.7]
    tasks = {t.data.model: t for t in run["score"]}
    assert tasks["delta"].data.error["type"] == "ValueError"  # failed, caught
    assert tasks["alpha"].data.weights.shape == (3, 4)
    assert [c.type for c in run["compare"].task.cards] == ["default"]
    # The report itself is checked in a browser: tests/test_report_browser.py.


def check_foreach_parent_artifacts(store: Path) -> None:
    run = latest("ForeachParentFlow", store)
    assert run.data.statuses == {0.2: "low", 0.5: "low", 0.9: "high"}
    assert run.data.config == {"threshold": 0.5}
    # Every foreach task sees the parent's config: the same stored value, not a copy.
    shas = {t["config"].sha for t in run["process"]} | {run["start"].task["config"].sha}
    assert len(shas) == 1


def check_large_artifact(store: Path) -> None:
    run = latest("LargeArtifactFlow", store)
    size_mb = run.parameters["size_mb"]
    stats = run.data.summary_stats
    assert stats["count"] == size_mb * (1 << 20) // 8
    assert abs(stats["mean"] - 10.0) < 0.05 and abs(stats["std"] - 2.0) < 0.05
    assert run["report"].task.data.loaded_here == ["summary_stats"]  # never loaded samples
    first, last = run["start"].task["samples"], run.end_task["samples"]
    assert first.encoding == "numpy" and first.sha == last.sha
    with contextlib.closing(sqlite3.connect(store)) as conn:
        query = "SELECT count(*) FROM blobs WHERE size >= ?"
        (copies,) = conn.execute(query, (first.size,)).fetchone()
    assert copies == 1


def check_quickstart(store: Path) -> None:
    run = latest("TrainFlow", store)
    assert run.parameters == {"epochs": 200}
    assert sorted(run.data.losses) == [0.01, 0.05, 0.1, 0.5]
    assert round(run.data.loss, 5) == min(run.data.losses.values())
    w, b = run.data.weights
    assert abs(w - 3.0) < 0.2 and abs(b - 0.5) < 0.2
    assert len(run["train"]) == 4


def check_config(store: Path) -> None:
    run = latest("ConfigFlow", store)
    assert run.data.train == {
        "rates": [0.01, 0.05, 0.1, 0.5],
        "target": 0.1,
        "retries": 1,
        "flaky": True,
    }
    assert run.data.best_rate == 0.1
    assert run.data.attempts == [2, 2, 2, 2]  # retries=1 from config.json, flaky first tries
    assert "best rate 0.1 for target 0.1" in run["end"].task.stdout


def check_switch_and_loop(store: Path) -> None:
    run = latest("SwitchAndLoopFlow", store)
    assert [s.id for s in run] == ["start", "train_big", "refine", "end"]  # one branch ran
    passes = list(run["refine"])
    assert [t.data.error for t in passes] == [0.2, 0.1, 0.05]
    assert [t.stdout for t in passes] == [
        "pass 0: error 0.2\n", "pass 1: error 0.1\n", "pass 2: error 0.05\n"
    ]  # fmt: skip
    assert run["end"].task.stdout == "big model, error 0.05\n"


CHECKS: dict[str, Callable[[Path], None]] = {
    "artifact_basics": check_artifact_basics,
    "supported_types": check_supported_types,
    "ephemeral": check_ephemeral,
    "include_file": check_include_file,
    "config": check_config,
    "branches": check_branches,
    "conflict_resolution": check_conflict_resolution,
    "foreach": check_foreach,
    "foreach_parent_artifacts": check_foreach_parent_artifacts,
    "large_artifact": check_large_artifact,
    "quickstart": check_quickstart,
    "switch_and_loop": check_switch_and_loop,
    "report_demo": check_report_demo,
}
# Plain asyncio programs, not flow command lines (web_service: tests/test_web_service.py).
SCRIPTS = {"embed_asyncio", "share_a_run", "web_service"}


def test_every_example_is_tested() -> None:
    assert {p.stem for p in EXAMPLES.glob("*.py")} == set(CHECKS) | SCRIPTS


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_example_runs(tmp_path: Path, name: str) -> None:
    store = run_example(tmp_path, name)
    CHECKS[name](store)


def documented_commands() -> list[tuple[str, str]]:
    """Each ``python examples/X.py ...`` line of an example's docstring: (file, command)."""
    import ast

    found = []
    for path in sorted(EXAMPLES.glob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        for line in doc.splitlines():
            command = line.split("  #", 1)[0].strip()
            if command.startswith("python examples/"):
                found.append((path.stem, command))
    return found


# Documented, and too heavy to run here: 200 MB written (large_artifact runs at its default).
HEAVY = {"python examples/large_artifact.py run --size_mb 200"}


@pytest.mark.parametrize(
    ("name", "command"),
    [c for c in documented_commands() if c[1] not in HEAVY and c[0] not in SCRIPTS],
)
def test_every_command_an_example_documents_works(tmp_path: Path, name: str, command: str) -> None:
    import shlex

    (tmp_path / "examples").symlink_to(EXAMPLES)  # the commands name examples/X.py
    argv = shlex.split(command)
    assert argv[0] == "python"
    proc = run_python(tmp_path, *argv[1:], env={"ASYNCFLOW_STORE": str(tmp_path / "s.db")})
    assert proc.returncode == 0, f"{command}: {proc.stderr}"
    assert "succeeded" in proc.stdout, proc.stdout


def test_the_documented_commands_are_found() -> None:
    commands = dict(documented_commands())
    assert len(documented_commands()) >= 8
    assert "config" in commands and "quickstart" in commands


def test_embed_asyncio(tmp_path: Path) -> None:
    store = tmp_path / "embedded.db"
    proc = run_python(
        tmp_path, str(EXAMPLES / "embed_asyncio.py"), env={"ASYNCFLOW_STORE": str(store)}
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    ticked = re.search(r"the ticker ticked (\d+) times while the flow ran", out)
    assert ticked is not None, out
    # The flow sleeps at least 0.4 s (in coroutines and in threads); a tick is due every
    # 20 ms, so only a loop blocked by the flow could tick fewer than a handful of times.
    assert int(ticked.group(1)) >= 5, out
    assert "total_length = 14000" in out
    assert latest("EmbeddedFlow", store).data.total_length == 14_000
    assert not (tmp_path / "asyncflow.db").exists()  # the env var was honoured


def test_share_a_run(tmp_path: Path) -> None:
    proc = run_python(tmp_path, str(EXAMPLES / "share_a_run.py"))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "laptop: TrainOnGPU/1/train/2 failed: no GPU on this machine" in out
    assert "server: imported it as TrainOnGPU/1 (failed)" in out
    assert "server: resumed as TrainOnGPU/2: succeeded; reused ['start'] from the laptop" in out
    assert "slope = 3.00" in out
    assert list(tmp_path.iterdir()) == []  # everything lived in a temporary folder


# --- the rest of the command line -----------------------------------------------------------


def test_show_and_check(tmp_path: Path) -> None:
    script = str(EXAMPLES / "branches.py")
    show = run_python(tmp_path, script, "show")
    assert show.returncode == 0 and show.stderr == ""
    assert "branch_a" in show.stdout and "join" in show.stdout
    mermaid = run_python(tmp_path, script, "show", "--mermaid")
    assert mermaid.returncode == 0 and mermaid.stdout.startswith("flowchart")
    check = run_python(tmp_path, script, "check")
    assert check.returncode == 0 and check.stdout == "BranchesFlow is valid: 5 steps.\n"
    assert list(tmp_path.iterdir()) == []  # neither command creates a store


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["run", "--nope", "1"], "unrecognized arguments: --nope 1"),
        (["run", "--epochs", "many"], "'epochs'"),
    ],
    ids=["unknown-option", "bad-parameter-value"],
)
def test_bad_input_is_one_line_exit_2(tmp_path: Path, argv: list[str], needle: str) -> None:
    proc = run_python(tmp_path, str(EXAMPLES / "quickstart.py"), *argv)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and needle in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "asyncflow.db").exists()


def test_store_commands_read_an_example_run(tmp_path: Path) -> None:
    store = run_example(tmp_path, "foreach")
    runs = run_python(tmp_path, "-m", "asyncflow", "runs", "--store", str(store))
    assert runs.returncode == 0 and "ForeachFlow" in runs.stdout
    dump = run_python(
        tmp_path, "-m", "asyncflow", "dump", "ForeachFlow/1/avg_score", "--store", str(store)
    )
    assert (dump.returncode, dump.stdout) == (0, "0.5\n")
    logs = run_python(
        tmp_path, "-m", "asyncflow", "logs", "ForeachFlow/1/process", "--store", str(store)
    )
    assert logs.returncode == 0 and "Processed B" in logs.stdout


# --- the README's snippets --------------------------------------------------------------------


def python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def block_with(needle: str) -> str:
    found = [block for block in python_blocks() if needle in block]
    assert len(found) == 1, f"expected one README block containing {needle!r}"
    return found[0]


def test_readme_quickstart_is_the_example() -> None:
    source = (EXAMPLES / "quickstart.py").read_text(encoding="utf-8")
    code = source[source.index("import random") :]
    assert block_with("class TrainFlow(FlowSpec):") == code


def test_readme_embedded_run_and_client_snippets(tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(EXAMPLES), "PYTHONDONTWRITEBYTECODE": "1"}
    embedded = block_with('await TrainFlow(store="runs.db")')
    proc = run_python(tmp_path, "-c", embedded, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-3:-1] == ["TrainFlow/1 succeeded", "0.5"]
    for needle in ('with Flow("TrainFlow", store="runs.db")', "async with Flow.aopen("):
        snippet = block_with(needle)
        if "await" in snippet:  # a fragment of an async function: wrap it to run it
            body = "\n".join("    " + line for line in snippet.splitlines())
            snippet = f"import asyncio\nfrom asyncflow import Flow\nasync def main():\n{body}\n"
            snippet += "    assert len(losses) == 4\nasyncio.run(main())\n"
        proc = run_python(tmp_path, "-c", snippet, env=env)
        assert proc.returncode == 0, proc.stderr
