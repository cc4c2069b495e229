"""Run, Step, Task and DataArtifact opened by their pathspec, and run.code, on real stores."""

from __future__ import annotations

import gc
import linecache
import pickle
import sqlite3
import subprocess
import sys
import types
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import numpy as np
import pytest

import asyncflow
from asyncflow import (
    ArtifactNotFoundError,
    DataArtifact,
    Flow,
    NamespaceMismatchError,
    NotFoundError,
    Run,
    Step,
    StepFailed,
    StoreError,
    Task,
    UsageError,
)
from tests.flows.spin_flows import FailFlow, SpinFlow


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = str(tmp_path_factory.mktemp("pathspec") / "runs.db")

    async def main() -> None:
        await SpinFlow(store=path, echo=False).run()
        await SpinFlow(store=path, echo=False, tags=["exp"]).run(alpha=3)
        with pytest.raises(StepFailed):
            await FailFlow(store=path, echo=False).run()

    anyio.run(main)
    yield path


def test_run_by_pathspec_is_the_run_flow_indexing_gives(store: str) -> None:
    run = Run("SpinFlow/2", store)
    assert run == Flow("SpinFlow", store)["2"]
    assert run.pathspec == "SpinFlow/2" and run.parameters == {"alpha": 3}
    assert run.data.total == 180
    assert run.parent.name == "SpinFlow"


def test_step_task_and_artifact_by_pathspec(store: str) -> None:
    step = Step("SpinFlow/1/train", store)
    assert step.id == "train" and step.pathspec == "SpinFlow/1/train"
    assert [t.data.score for t in step.tasks()] == [20, 40, 60]
    assert len(step.tasks) == 3
    second = step.tasks[1]
    task = Task(second.pathspec, store)
    assert task == second and task.data.score == 40 and task.index == 1
    assert task.parent.id == "train" and task.parent.parent.id == "1"
    art = DataArtifact(f"SpinFlow/1/start/{Step('SpinFlow/1/start', store).task.id}/arr", store)
    np.testing.assert_array_equal(art.data, np.arange(6, dtype=np.float32))
    assert art.name == "arr" and art.task.step_name == "start"


def test_task_artifacts_by_attribute_give_data_artifacts(store: str) -> None:
    task = Step("SpinFlow/1/start", store).task
    art = task.artifacts.note
    assert isinstance(art, DataArtifact) and art.data == "from start"
    assert task.artifacts["note"] == art
    assert sorted(a.name for a in task.artifacts) == ["alpha", "arr", "items", "note"]


def test_pathspec_objects_use_the_default_store_as_flow_does(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASYNCFLOW_STORE", store)
    assert Run("SpinFlow/1")._handle.path == Flow("SpinFlow").store == str(Path(store).resolve())
    assert Step("SpinFlow/1/end").task.data.done == 121


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (lambda s: Run("NoFlow/1", s), ["'NoFlow'", "its flows are: FailFlow, SpinFlow"]),
        (lambda s: Run("SpinFlow/9", s), ["no run 9", "its runs, newest first: 2, 1"]),
        (lambda s: Step("SpinFlow/1/nope", s), ["no step 'nope'", "start, train, join, end"]),
        (lambda s: Task("SpinFlow/1/start/999", s), ["no task '999'", "its tasks: "]),
        (lambda s: Step("FailFlow/3/end", s), ["did not reach its end step", "start, boom"]),
    ],
)
def test_a_missing_part_is_not_found_saying_what_exists(
    store: str, make: object, said: list[str]
) -> None:
    with pytest.raises(NotFoundError) as info:
        make(store)  # type: ignore[operator]
    for words in said:
        assert words in str(info.value), str(info.value)


def test_a_missing_artifact_lists_the_task_s_artifacts(store: str) -> None:
    start = Step("SpinFlow/1/start", store).task
    with pytest.raises(ArtifactNotFoundError) as info:
        DataArtifact(f"{start.pathspec}/nope", store)
    assert "alpha, arr, items, note" in str(info.value)


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (lambda s: Run("SpinFlow", s), "it has 1 part(s), not 2"),
        (lambda s: Run("SpinFlow/1/start", s), "it has 3 part(s), not 2"),
        (lambda s: Run("SpinFlow/", s), "its part 2 is empty"),
        (lambda s: Run("/1", s), "its part 1 is empty"),
        (lambda s: Run("SpinFlow/latest", s), "the run id 'latest' is not a whole number"),
        (lambda s: Run("SpinFlow/-1", s), "the run id '-1' is not a whole number"),
        (lambda s: Step("SpinFlow/1/ ", s), "its part 3 is empty"),
        (lambda s: Task("SpinFlow/1/start/x", s), "the task id 'x' is not a whole number"),
        (lambda s: DataArtifact("SpinFlow/1/start/1", s), "it has 4 part(s), not 5"),
        (lambda s: Run(12, s), "it is a int, not a string"),
    ],
)
def test_a_malformed_pathspec_is_a_usage_error(store: str, make: object, said: str) -> None:
    with pytest.raises(UsageError) as info:
        make(store)  # type: ignore[operator]
    assert said in str(info.value)
    assert "e.g." in str(info.value)


def test_no_store_there_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        Run("SpinFlow/1", str(tmp_path / "none.db"))


def test_a_run_outside_the_namespace_is_refused(store: str) -> None:
    asyncflow.namespace("user:nobody")  # no run of the flow in it
    try:
        with pytest.raises(NamespaceMismatchError):
            Run("SpinFlow/1", store)
        asyncflow.namespace("exp")  # run 2 carries it, run 1 does not
        assert Run("SpinFlow/2", store).id == "2"
        with pytest.raises(NamespaceMismatchError, match="run SpinFlow/1 is not in"):
            Run("SpinFlow/1", store)
        with pytest.raises(NamespaceMismatchError):
            Task(Step("SpinFlow/2/end", store).task.pathspec.replace("/2/", "/1/", 1), store)
    finally:
        asyncflow.default_namespace()


def test_a_pathspec_run_owns_its_connection_and_closes_it(store: str) -> None:
    with Run("SpinFlow/1", store) as run:
        assert run.data.total == 120
        assert run._handle._conn is not None
    assert run._handle._conn is None
    assert run["train"].task.data.score == 20  # reads reopen it
    task = Task(run["end"].task.pathspec, store)
    assert task.data.done == 121
    closer = task._handle._closer
    del task
    gc.collect()
    assert closer is not None and not closer.alive  # closed with the collected task
    with Step("SpinFlow/1/join", store) as step:
        assert step.data.total == 120
    assert step._run._handle._conn is None


def test_pathspec_objects_pickle_and_compare(store: str) -> None:
    for obj in (
        Run("SpinFlow/1", store),
        Step("SpinFlow/1/train", store),
        Step("SpinFlow/1/train", store).task,
        Step("SpinFlow/1/start", store).task["note"],
    ):
        again = pickle.loads(pickle.dumps(obj))
        assert again == obj and type(again) is type(obj)


def test_the_awaitable_twins(store: str) -> None:
    async def main() -> None:
        run = await Run.aopen("SpinFlow/2", store)
        assert (await run.aend_task()).id == run.end_task.id
        step = await Step.aopen("SpinFlow/2/train", store)
        assert len(step) == 3
        task = await Task.aopen(step.task.pathspec, store)
        assert await task.adata("score") == 30
        art = await DataArtifact.aopen(f"{task.pathspec}/score", store)
        assert await art.adata() == 30
        with pytest.raises(NotFoundError):
            await Run.aopen("SpinFlow/77", store)
        with pytest.raises(UsageError):
            await Task.aopen("SpinFlow/2/train", store)

    anyio.run(main)


# --- run.code ---------------------------------------------------------------------------------


def test_run_code_is_the_flow_file_as_it_ran(store: str) -> None:
    from tests.flows import spin_flows

    run = Run("SpinFlow/1", store)
    assert run.code == Path(spin_flows.__file__).read_text(encoding="utf-8")

    async def main() -> str | None:
        return await (await Run.aopen("SpinFlow/1", store)).acode()

    assert anyio.run(main) == run.code


def test_runs_of_unchanged_code_share_one_code_blob(store: str) -> None:
    runs = [Run("SpinFlow/1", store), Run("SpinFlow/2", store), Run("FailFlow/3", store)]
    shas = {r._row.source_sha for r in runs}
    assert len(shas) == 1 and None not in shas  # one file, one blob, for all three runs
    with sqlite3.connect(store) as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM blobs WHERE sha = ?", (runs[0]._row.source_sha,)
        ).fetchone()
    assert count == 1


def test_run_code_is_none_for_a_flow_without_a_file(tmp_path: Path) -> None:
    # What a notebook does: the cell's code is in Python's line cache under a file name that
    # does not exist on disk. run.code is None; run.source keeps the class's own source.
    cell = str(tmp_path / "cell_3.py")
    text = (
        "from asyncflow import FlowSpec, step\n\n"
        "class CellCodeFlow(FlowSpec):\n"
        "    @step\n    def start(self):\n        self.next(self.end)\n\n"
        "    @step\n    def end(self):\n        pass\n"
    )
    name = f"cell_{uuid.uuid4().hex}"
    module = types.ModuleType(name)
    module.__file__ = cell
    linecache.cache[cell] = (len(text), None, text.splitlines(keepends=True), cell)
    sys.modules[name] = module
    try:
        exec(compile(text, cell, "exec"), module.__dict__)
        path = str(tmp_path / "runs.db")
        run = anyio.run(lambda: module.CellCodeFlow(store=path, echo=False).run())
    finally:
        del sys.modules[name]
        linecache.cache.pop(cell, None)
    assert run.code is None
    assert run.source is not None and run.source.startswith("class CellCodeFlow")


def test_a_flow_file_over_the_cap_is_not_stored_as_code(tmp_path: Path) -> None:
    from asyncflow._runtime._source import MAX_SOURCE_BYTES

    flow_file = tmp_path / "big_flow.py"
    padding = "# padding\n" * (MAX_SOURCE_BYTES // 10 + 1)
    flow_file.write_text(
        "from asyncflow import FlowSpec, step\n" + padding + "class BigFlow(FlowSpec):\n"
        "    @step\n    def start(self):\n        self.next(self.end)\n\n"
        "    @step\n    def end(self):\n        pass\n\n"
        'if __name__ == "__main__":\n    BigFlow()\n',
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, str(flow_file), "run", "--store", str(tmp_path / "runs.db")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    run = Run("BigFlow/1", str(tmp_path / "runs.db"))
    assert run.code is None and run.source is not None and run.source.startswith("class BigFlow")


def test_run_code_travels_in_an_archive(store: str, tmp_path: Path) -> None:
    archive = tmp_path / "one.afrun"
    Run("SpinFlow/1", store).export(archive)
    assert Run("SpinFlow/1", str(archive)).code == Run("SpinFlow/1", store).code


def test_run_code_of_a_run_stored_without_a_source_is_none(tmp_path: Path) -> None:
    from tests._storefixture import T, write_run

    path = str(tmp_path / "old.db")
    write_run(path, "OldFlow", [T("start", artifacts={"x": 1})])  # no source, as before schema 3
    with Run("OldFlow/1", path) as run:
        assert run.code is None and run.source is None
