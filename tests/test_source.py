"""The flow's source code, captured at run start and stored with every run.

Each test writes its flow into a module file of its own (a fresh class, so the per-class cache
starts empty) and checks what ``run.source``, ``await run.asource()``, the blobs table and
``asyncflow show Flow/run --source`` give back.
"""

from __future__ import annotations

import contextlib
import importlib.util
import linecache
import sqlite3
import sys
import types
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from asyncflow import Flow, FlowSpec, StepFailed, StoreError
from asyncflow._cli import main
from asyncflow._runtime._source import capture_source, read_source
from tests._storefixture import T, write_run

FLOW_TEXT = '''\
"""A flow written by tests/test_source.py."""

from asyncflow import FlowSpec, step

# «marker»


class SourceFlow(FlowSpec):
    """Two steps and a comment, so the text is recognisable."""

    @step
    def start(self):
        self.x = 1
        self.next(self.end)

    @step
    def end(self):
        pass
'''

FAILING_TEXT = """\
from asyncflow import FlowSpec, step


class ResumedFlow(FlowSpec):
    @step
    def start(self):
        self.x = 1
        self.next(self.end)

    @step
    def end(self):
        raise RuntimeError("version 1 fails here")
"""

FIXED_TEXT = FAILING_TEXT.replace('raise RuntimeError("version 1 fails here")', "self.y = 2")


@pytest.fixture
def modules() -> Iterator[list[str]]:
    """Names of the modules a test imported from files; removed from sys.modules after it."""
    names: list[str] = []
    yield names
    for name in names:
        sys.modules.pop(name, None)


def load(folder: Path, text: str, modules: list[str], cls: str = "SourceFlow") -> type[FlowSpec]:
    """Write ``text`` as a new module file in ``folder``, import it, return its class ``cls``."""
    name = f"srcflow_{uuid.uuid4().hex}"
    path = folder / f"{name}.py"
    path.write_text(text, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    modules.append(name)
    spec.loader.exec_module(module)
    flow_cls: type[FlowSpec] = getattr(module, cls)
    return flow_cls


def source_shas(store: str) -> list[bytes | None]:
    with contextlib.closing(sqlite3.connect(store)) as conn:
        rows = conn.execute("SELECT source_sha FROM runs ORDER BY id").fetchall()
    return [None if sha is None else bytes(sha) for (sha,) in rows]


def blob_count(store: str, sha: bytes) -> int:
    with contextlib.closing(sqlite3.connect(store)) as conn:
        count: int = conn.execute("SELECT count(*) FROM blobs WHERE sha = ?", (sha,)).fetchone()[0]
    return count


# --- capture --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_run_holds_its_flow_file(tmp_path: Path, store: str, modules: list[str]) -> None:
    text = FLOW_TEXT.replace("«marker»", "captured")
    flow_cls = load(tmp_path, text, modules)
    run = await flow_cls(store=store, echo=False).run()
    file = str((tmp_path / f"{flow_cls.__module__}.py").resolve())
    # The Run returned by run() and one read back through the client agree.
    assert run.source == text
    assert run.source_path == file
    again = Flow("SourceFlow", store=store)[run.id]
    assert (again.source, again.source_path) == (text, file)
    fresh = Flow("SourceFlow", store=store)[run.id]
    assert await fresh.asource() == text
    assert await fresh.asource_path() == file


@pytest.mark.anyio
async def test_runs_of_the_same_code_share_one_blob(
    tmp_path: Path, store: str, modules: list[str]
) -> None:
    flow = load(tmp_path, FLOW_TEXT, modules)(store=store, echo=False)
    await flow.run()
    await flow.run()
    first, second = source_shas(store)
    assert first is not None and first == second
    assert blob_count(store, first) == 1


@pytest.mark.anyio
async def test_the_file_is_read_once_per_class(
    tmp_path: Path, store: str, modules: list[str]
) -> None:
    flow_cls = load(tmp_path, FLOW_TEXT, modules)
    before = await flow_cls(store=store, echo=False).run()
    # Edited on disk after the first run: this class's runs keep the code they were built from.
    assert before.source_path is not None
    file = Path(before.source_path)
    file.write_text(FLOW_TEXT + "# edited later\n", encoding="utf-8")
    after = await flow_cls(store=store, echo=False).run()
    assert after.source == FLOW_TEXT
    # The file imported again is another class, and its runs hold the new text.
    reloaded = load(tmp_path, FLOW_TEXT + "# a new version\n", modules)
    newer = await reloaded(store=store, echo=False).run()
    assert newer.source == FLOW_TEXT + "# a new version\n"
    shas = source_shas(store)
    assert shas[0] == shas[1] != shas[2]


@pytest.mark.anyio
async def test_a_resumed_run_holds_the_code_that_resumed_it(
    tmp_path: Path, store: str, modules: list[str]
) -> None:
    failing = load(tmp_path, FAILING_TEXT, modules, "ResumedFlow")
    with pytest.raises(StepFailed) as info:
        await failing(store=store, echo=False).run()
    origin = info.value.run
    fixed = load(tmp_path, FIXED_TEXT, modules, "ResumedFlow")
    resumed = await fixed(store=store, echo=False).resume(origin.id)
    assert resumed.successful and resumed.origin_run_id == origin.id
    assert resumed.source == FIXED_TEXT
    assert resumed.source_path == str((tmp_path / f"{fixed.__module__}.py").resolve())
    assert Flow("ResumedFlow", store=store)[origin.id].source == FAILING_TEXT


# --- flows without a readable file ----------------------------------------------------------


@pytest.mark.anyio
async def test_a_flow_from_a_notebook_cell_keeps_its_class_source(
    tmp_path: Path, store: str
) -> None:
    # What a notebook does: the cell's code is in Python's line cache under a file name that
    # does not exist on disk, and the module is not a file.
    cell = str(tmp_path / "cell_7.py")
    text = FLOW_TEXT.replace("«marker»", "from a cell").replace("SourceFlow", "CellFlow")
    name = f"cell_{uuid.uuid4().hex}"
    module = types.ModuleType(name)
    module.__file__ = cell
    linecache.cache[cell] = (len(text), None, text.splitlines(keepends=True), cell)
    sys.modules[name] = module
    try:
        exec(compile(text, cell, "exec"), module.__dict__)
        run = await module.CellFlow(store=store, echo=False).run()
    finally:
        del sys.modules[name]
        linecache.cache.pop(cell, None)
    assert run.successful
    class_text = text[text.index("class CellFlow") :]
    assert run.source == class_text
    assert run.source_path is None


@pytest.mark.anyio
async def test_a_flow_whose_source_cannot_be_read_still_runs(
    tmp_path: Path, store: str, modules: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    flow_cls = load(tmp_path, FLOW_TEXT.replace("SourceFlow", "LostFlow"), modules, "LostFlow")
    flow_cls.__module__ = "no_such_module"  # as for a class of `python -c`: no file to find
    assert read_source(flow_cls) is None and capture_source(flow_cls) is None
    run = await flow_cls(store=store, echo=False).run()
    assert run.successful
    assert source_shas(store) == [None]
    stored = Flow("LostFlow", store=store)[run.id]
    assert stored.source is None and stored.source_path is None
    assert await stored.asource() is None
    assert main(["show", "LostFlow/1", "--source", "--store", store]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "LostFlow/1 has no stored source code" in err


def test_runs_stored_without_a_source_have_none(store: str) -> None:
    # As written before schema 3 (or by another tool): runs.source_sha is NULL.
    write_run(store, "OldFlow", [T("start"), T("end")])
    run = Flow("OldFlow", store=store)["1"]
    assert run.source is None and run.source_path is None


def test_a_source_blob_that_is_not_a_record_is_refused(store: str) -> None:
    write_run(store, "OldFlow", [T("start"), T("end")], params={"alpha": 0.5})
    with contextlib.closing(sqlite3.connect(store)) as conn, conn:
        # Point the run's source at its parameter's blob: valid msgpack, but not a record.
        conn.execute("UPDATE runs SET source_sha = (SELECT sha FROM run_params)")
    run = Flow("OldFlow", store=store)["1"]
    with pytest.raises(StoreError, match=r"OldFlow/1: its blob is not a \{path, text\} record"):
        run.source  # noqa: B018


# --- the command line -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_show_source_prints_it(
    tmp_path: Path, store: str, modules: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    text = FLOW_TEXT.replace("«marker»", "printed")
    run = await load(tmp_path, text, modules)(store=store, echo=False).run()
    capsys.readouterr()
    assert main(["show", f"SourceFlow/{run.id}", "--source", "--store", store]) == 0
    out, err = capsys.readouterr()
    assert out == text and err == ""
    # --source is about a run: another pathspec is a one-line usage error.
    assert main(["show", "SourceFlow", "--source", "--store", store]) == 2
    _, err = capsys.readouterr()
    assert "expected Flow/run (--source prints the source of a run)" in err
