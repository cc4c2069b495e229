"""Parameters and IncludeFiles given to run(**kw): types, errors before any step, the record."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from asyncflow import Flow, FlowSpec, ParameterError
from tests.flows.params import IncludeFlow, RequiredParamFlow, TypedParamsFlow


def run_count(store: str) -> int:
    """Runs recorded in the store (0 if the file was never created)."""
    if not os.path.exists(store):
        return 0
    conn = sqlite3.connect(store)
    try:
        return int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])
    finally:
        conn.close()


async def refused(flow: FlowSpec, **params: Any) -> ParameterError:
    with pytest.raises(ParameterError) as info:
        await flow.run(**params)
    return info.value


# --- types ---------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_defaults_apply_with_their_types(store: str) -> None:
    run = await TypedParamsFlow(store=store, echo=False).run()
    start = run["start"].data
    assert start.seen == {
        "count": 1,
        "ratio": 0.5,
        "flag": False,
        "label": "x",
        "cfg": {"k": 1},
        "lr": 0.1,
        "maybe": None,
    }
    assert start.types == {
        "count": "int",
        "ratio": "float",
        "flag": "bool",
        "label": "str",
        "cfg": "dict",
        "lr": "float",
        "maybe": "NoneType",
    }
    assert run.data.cfg_in_end == {"k": 1}


@pytest.mark.anyio
async def test_values_given_by_keyword_are_converted_to_the_declared_types(store: str) -> None:
    run = await TypedParamsFlow(store=store, echo=False).run(
        count=3, ratio=2, flag=True, label="hello", cfg='{"a": [1, 2]}', learning_rate=0.3, maybe=5
    )
    start = run["start"].data
    assert start.seen == {
        "count": 3,
        "ratio": 2.0,
        "flag": True,
        "label": "hello",
        "cfg": {"a": [1, 2]},
        "lr": 0.3,
        "maybe": 5,
    }
    assert start.types["ratio"] == "float"  # an int given to a float parameter becomes a float
    assert start.types["count"] == "int"


@pytest.mark.anyio
async def test_json_parameter_takes_a_python_value_as_it_is(store: str) -> None:
    run = await TypedParamsFlow(store=store, echo=False).run(cfg=[1, {"x": None}])
    assert run["start"].data.seen["cfg"] == [1, {"x": None}]
    assert run.data.cfg_in_end == [1, {"x": None}]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"count": 1.5}, "count"),
        ({"count": "many"}, "count"),
        ({"flag": "perhaps"}, "flag"),
        ({"ratio": True}, "ratio"),
        ({"cfg": "{not json"}, "cfg"),
    ],
    ids=["float-for-int", "word-for-int", "word-for-bool", "bool-for-float", "bad-json"],
)
async def test_invalid_values_are_refused_before_anything_runs(
    store: str, params: dict[str, Any], name: str
) -> None:
    exc = await refused(TypedParamsFlow(store=store, echo=False), **params)
    assert exc.name == name
    assert name in str(exc)
    assert isinstance(exc, ValueError)
    assert run_count(store) == 0


# --- required and unknown parameters -----------------------------------------------------------


@pytest.mark.anyio
async def test_a_missing_required_parameter_is_refused_before_any_step(
    store: str, tmp_path: Path
) -> None:
    first, second = tmp_path / "first.marker", tmp_path / "second.marker"
    ok = await RequiredParamFlow(store=store, echo=False).run(needed=4, marker=str(first))
    assert first.read_text() == "ran with 4"  # the marker does prove a step ran
    assert ok.successful

    exc = await refused(RequiredParamFlow(store=store, echo=False), marker=str(second))
    assert exc.name == "needed"
    assert "needed" in str(exc)
    assert not second.exists()
    assert run_count(store) == 1  # no run row for the refused run
    with Flow("RequiredParamFlow", store=store) as flow:
        assert [r.id for r in flow.runs()] == [ok.id]


@pytest.mark.anyio
async def test_a_missing_required_parameter_creates_no_store(store: str, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    await refused(RequiredParamFlow(store=store, echo=False), marker=str(marker))
    assert not marker.exists()
    assert run_count(store) == 0


@pytest.mark.anyio
async def test_an_unknown_parameter_is_refused_before_any_step(store: str, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    exc = await refused(
        RequiredParamFlow(store=store, echo=False), needed=1, marker=str(marker), bogus=2
    )
    assert "bogus" in str(exc)
    assert exc.name == "bogus"
    assert not marker.exists()
    assert run_count(store) == 0


@pytest.mark.anyio
async def test_a_parameter_is_given_by_its_name_not_its_attribute(store: str) -> None:
    exc = await refused(TypedParamsFlow(store=store, echo=False), lr=0.2)
    assert "lr" in str(exc)
    assert "learning_rate" in str(exc)  # listed among the valid names


# --- IncludeFile ---------------------------------------------------------------------------------


@pytest.fixture
def include_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding the IncludeFlow defaults notes.txt and blob.bin."""
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "notes.txt").write_text("default notes\nsecond line\n", encoding="utf-8")
    (folder / "blob.bin").write_bytes(bytes(range(256)))
    monkeypatch.chdir(folder)
    return folder


@pytest.mark.anyio
async def test_include_file_text_and_bytes(store: str, include_dir: Path) -> None:
    run = await IncludeFlow(store=store, echo=False).run()
    start = run["start"].data
    assert start.text_seen == "default notes\nsecond line\n"
    assert type(start.text_seen) is str
    assert start.raw_seen == bytes(range(256))
    assert type(start.raw_seen) is bytes
    assert run.data.text_in_end == "default notes\nsecond line\n"


@pytest.mark.anyio
async def test_include_file_path_is_overridden_per_run(store: str, include_dir: Path) -> None:
    other = include_dir / "other.txt"
    other.write_text("ünïcode other\n", encoding="utf-8")
    flow = IncludeFlow(store=store, echo=False)
    overridden = await flow.run(text=str(other))
    assert overridden["start"].data.text_seen == "ünïcode other\n"
    as_path = await flow.run(text=other)  # a pathlib.Path works too
    assert as_path["start"].data.text_seen == "ünïcode other\n"
    default = await flow.run()
    assert default["start"].data.text_seen == "default notes\nsecond line\n"


@pytest.mark.anyio
async def test_include_file_content_is_read_at_run_start(store: str, include_dir: Path) -> None:
    flow = IncludeFlow(store=store, echo=False)
    first = await flow.run()
    (include_dir / "notes.txt").write_text("changed\n", encoding="utf-8")
    second = await flow.run()
    assert first["start"].data.text_seen == "default notes\nsecond line\n"
    assert second["start"].data.text_seen == "changed\n"


@pytest.mark.anyio
async def test_a_missing_include_file_is_refused_before_any_step(
    store: str, include_dir: Path
) -> None:
    marker = include_dir / "marker"
    missing = include_dir / "absent.txt"
    exc = await refused(IncludeFlow(store=store, echo=False), text=str(missing), marker=str(marker))
    assert exc.name == "text"
    assert "absent.txt" in str(exc)
    assert not marker.exists()
    assert run_count(store) == 0


@pytest.mark.anyio
async def test_a_text_include_file_that_is_not_text_is_refused(
    store: str, include_dir: Path
) -> None:
    bad = include_dir / "latin1.txt"
    bad.write_bytes("café".encode("latin-1"))
    exc = await refused(IncludeFlow(store=store, echo=False), text=str(bad))
    assert exc.name == "text"
    assert run_count(store) == 0


# --- the record ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_run_parameters_in_the_client(store: str, include_dir: Path) -> None:
    run = await TypedParamsFlow(store=store, echo=False).run(count=7, cfg='{"z": 0}')
    expected = {
        "count": 7,
        "ratio": 0.5,
        "flag": False,
        "label": "x",
        "cfg": {"z": 0},
        "learning_rate": 0.1,
        "maybe": None,
    }
    assert run.parameters == expected
    with Flow("TypedParamsFlow", store=store) as flow:
        latest = flow.latest_run
        assert latest is not None
        assert latest.parameters == expected

    included = await IncludeFlow(store=store, echo=False).run()
    params = included.parameters
    assert params["text"] == "default notes\nsecond line\n"
    assert params["raw"] == bytes(range(256))
    assert params["marker"] == ""
