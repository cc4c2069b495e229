"""The run report's model (``asyncflow._report._model.build_model``): real runs in real store
files and archives, read back as plain JSON-able data.

What the page draws and how it escapes is tests/test_report_page*.py's; here, that every
hostile string stays the same plain data, that a value never fails the report, that an
untrusted pickle is never unpickled, and that a big foreach is summarised, not dropped.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

from asyncflow import Flow, Run, StepFailed, export_runs
from asyncflow._report import _model
from asyncflow._report._details import Details
from asyncflow._report._model import build_model
from asyncflow.report import areport_model, report_model
from tests.flows import report_flows as rf
from tests.flows import switch_flows as swf

pytestmark = pytest.mark.anyio


def step_of(model: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in model["steps"] if s["name"] == name)


def artifacts_of(task: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["name"]: a for a in task["artifacts"]}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
async def rich(store: str) -> dict[str, Any]:
    run = await rf.RichFlow(store=store, echo=False, tags=["nightly"]).run(alpha=0.7)
    return build_model(run)


# --- the run, the graph, the steps ----------------------------------------------------------


async def test_the_model_is_json_and_says_what_it_is(rich: dict[str, Any]) -> None:
    assert json.loads(json.dumps(rich, allow_nan=False)) == rich
    assert rich["format"] == "asyncflow-report" and rich["version"] == 1
    assert rich["source"] == {"kind": "store", "name": "store.db"}
    run = rich["run"]
    assert run["flow"] == "RichFlow" and run["pathspec"] == f"RichFlow/{run['id']}"
    assert run["status"] == "succeeded" and run["error"] is None
    assert run["created_at"] <= run["finished_at"]
    assert run["tags"] == ["nightly"]
    assert any(t.startswith("asyncflow_version:") for t in run["system_tags"])
    assert run["doc"] == rf.RichFlow.__doc__
    params = {p["name"]: p["preview"] for p in run["parameters"]}
    assert params == {
        "alpha": {"kind": "text", "text": "0.7"},
        "label": {"kind": "text", "text": "first"},
    }


async def test_the_graph_and_the_steps_in_order(rich: dict[str, Any]) -> None:
    graph = rich["graph"]
    assert graph["start"] == "start" and graph["end"] == "end"
    nodes = {n["name"]: n for n in graph["steps"]}
    assert nodes["start"]["kind"] == "foreach" and nodes["start"]["foreach_var"] == "items"
    assert nodes["start"]["out"] == ["body"] and nodes["join"]["in"] == ["body"]
    assert [s["name"] for s in rich["steps"]] == ["start", "body", "join", "end"]
    body = step_of(rich, "body")
    assert (body["n_tasks"], body["n_failed"], body["n_running"], body["omitted"]) == (3, 0, 0, 0)
    assert body["started_at"] <= body["finished_at"]
    assert [t["index"] for t in body["tasks"]] == [0, 1, 2]


async def test_the_timeline_has_every_task_and_its_retries(rich: dict[str, Any]) -> None:
    timeline = rich["timeline"]
    assert len(timeline) == 6  # start, 3 body, join, end
    names = [s["name"] for s in rich["steps"]]
    ids = {t["id"]: t for s in rich["steps"] for t in s["tasks"]}
    for step_index, task_id, start, end, status, retries in timeline:
        task = ids[task_id]
        assert task["pathspec"].split("/")[2] == names[step_index]
        assert (start, end, status) == (task["started_at"], task["finished_at"], task["status"])
        assert retries == len(task["attempts"]) - 1
    retried = next(t for t in step_of(rich, "body")["tasks"] if t["index"] == 1)
    assert [a["ok"] for a in retried["attempts"]] == [False, True]
    assert [a["n"] for a in retried["attempts"]] == [0, 1]
    assert retried["attempts"][0]["finished_at"] <= retried["attempts"][1]["started_at"]


# --- previews -------------------------------------------------------------------------------


async def test_previews_of_arrays_strings_lists_and_failing_reprs(rich: dict[str, Any]) -> None:
    arts = artifacts_of(step_of(rich, "start")["tasks"][0])
    matrix = arts["matrix"]
    assert matrix["type"] == "numpy.ndarray" and matrix["encoding"] == "numpy"
    assert matrix["preview"] == {
        "kind": "array",
        "shape": [3, 4],
        "dtype": "float64",
        "min": "0.0",
        "max": "11.0",
        "slice": "[[ 0.  1.  2.  3.]\n [ 4.  5.  6.  7.]\n [ 8.  9. 10. 11.]]",
    }
    big = arts["big"]["preview"]
    assert (big["shape"], big["dtype"]) == ([100_000], "int32")
    assert (big["min"], big["max"]) == ("0", "99999")
    assert "the first 7 of 100,000 elements" in big["slice"] and len(big["slice"]) < 200
    text = arts["text"]["preview"]
    assert text["kind"] == "text" and text["text"].startswith("x" * 1000)
    assert "4,000 more characters not shown" in text["text"]
    numbers = arts["numbers"]["preview"]["text"]
    assert numbers.startswith("[0, 1, 2,") and "list of 10,000 items" in numbers
    assert len(numbers) < 200
    assert arts["mapping"]["preview"] == {"kind": "text", "text": "{'a': 1, 'b': [1, 2, 3]}"}
    odd = arts["odd"]["preview"]
    assert odd["kind"] == "unavailable"
    assert "its repr raised RuntimeError: no repr for you" in odd["text"]
    broken = arts["broken"]["preview"]
    assert broken["kind"] == "unavailable" and arts["broken"]["type"] == ""
    assert "cannot load artifact 'broken'" in broken["text"]
    assert "this value cannot be rebuilt" in broken["text"]


async def test_a_dataframe_is_a_table_of_its_head(store: str) -> None:
    run = await rf.FrameFlow(store=store, echo=False).run()
    arts = artifacts_of(build_model(run)["steps"][0]["tasks"][0])
    frame = arts["frame"]
    assert frame["type"] == "pandas.DataFrame"
    table = frame["preview"]
    assert table["kind"] == "table" and table["total_rows"] == 25
    assert table["headers"] == ["", "a", "b"]
    assert table["rows"][:2] == [["0", "0", "r0"], ["1", "1", "r1"]]
    assert len(table["rows"]) == 10
    wide = arts["wide"]["preview"]
    assert wide["total_columns"] == 30 and len(wide["headers"]) == 1 + 20
    assert all(len(row) == 21 for row in wide["rows"]) and wide["total_rows"] == 3
    series = arts["series"]["preview"]
    assert series["headers"] == ["", "score"] and series["rows"] == [["0", "1.5"], ["1", "2.5"]]


async def test_output_is_cut_in_the_middle_saying_how_much(store: str) -> None:
    with pytest.raises(StepFailed):
        await rf.FailFlow(store=store, echo=False).run()
    run = Flow("FailFlow", store).latest_run
    assert run is not None
    model = build_model(run)
    assert model["run"]["status"] == "failed" and "boom" in model["run"]["error"]
    boom = step_of(model, "boom")
    assert boom["n_failed"] == 1
    task = boom["tasks"][0]
    assert task["status"] == "failed"
    assert task["exception"].startswith("ValueError: the boom step failed")
    assert 'raise ValueError("the boom step failed")' in task["traceback"]
    whole = run["boom"].task.stdout
    out = task["stdout"]
    head, _, rest = out.partition("\n… [")
    note, _, tail = rest.partition("] …\n")
    assert whole.startswith(head) and len(head) == Details.LOG_CHARS
    assert whole.endswith(tail) and len(tail) == Details.LOG_CHARS
    cut = len(whole) - 2 * Details.LOG_CHARS
    assert f"{cut:,} characters cut" in note
    assert f"asyncflow logs {task['pathspec']} --stdout" in note
    assert step_of(model, "end") == {
        "name": "end", "n_tasks": 0, "n_failed": 0, "n_running": 0, "started_at": None,
        "finished_at": None, "tasks": [], "omitted": 0,
    }  # fmt: skip


async def test_a_long_traceback_keeps_its_end(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(StepFailed):
        await rf.FailFlow(store=store, echo=False).run()
    monkeypatch.setattr(Details, "TRACEBACK_CHARS", 60)
    monkeypatch.setattr(Details, "EXCEPTION_CHARS", 10)
    run = Flow("FailFlow", store).latest_run
    assert run is not None
    task = step_of(build_model(run), "boom")["tasks"][0]
    whole = run["boom"].task.traceback
    assert whole is not None
    cut = len(whole) - 60
    assert task["traceback"] == f"[the first {cut:,} characters cut] …{whole[-60:]}"
    assert (
        task["exception"].startswith("ValueError")
        and "more characters not shown" in (task["exception"])
    )


async def test_a_caught_failure_is_not_a_failed_task(store: str) -> None:
    run = await rf.CaughtFlow(store=store, echo=False).run()
    start = step_of(build_model(run), "start")
    assert start["n_failed"] == 0
    assert "KeyError" in (start["tasks"][0]["exception"] or "")


async def test_cards_keep_their_stored_components(rich: dict[str, Any]) -> None:
    task = next(t for t in step_of(rich, "body")["tasks"] if t["index"] == 2)
    (card,) = task["cards"]
    assert card["id"] is None and card["type"] == "default"
    markdown, table, artifact = card["components"]
    assert markdown == {"kind": "markdown", "text": f"# item 2 {rf.HOSTILE}"}
    assert table == {"kind": "table", "headers": ["i", "2i"], "rows": [["2", "4"]],
                     "total_rows": 1}  # fmt: skip
    assert artifact == {"kind": "artifact", "name": "item", "preview": "2"}


async def test_card_images_are_base64_text(store: str) -> None:
    import base64

    from tests.flows import card_flows

    run = await card_flows.KindsFlow(store=store, echo=False).run()
    components = build_model(run)["steps"][0]["tasks"][0]["cards"][0]["components"]
    images = [c for c in components if c["kind"] == "image"]
    assert [(i["mime"], i["label"]) for i in images] == [
        ("image/png", "png"), ("image/jpeg", "jpeg"), ("image/gif", "gif"),
        ("image/svg+xml", "svg"),
    ]  # fmt: skip
    assert base64.b64decode(images[0]["data"]) == card_flows.PNG
    errors = [c["message"] for c in components if c["kind"] == "error"]
    assert any("no repr for you" in m for m in errors)


# --- a switch and a loop --------------------------------------------------------------------


async def test_a_switch_and_a_loop(store: str) -> None:
    sized = build_model(await swf.SizeFlow(store=store, echo=False).run(size="small"))
    node = next(n for n in sized["graph"]["steps"] if n["name"] == "start")
    assert node["kind"] == "switch" and node["condition"] == "choice"
    assert node["cases"] == {"big": "train_big", "small": "train_small"}
    assert step_of(sized, "train_big")["n_tasks"] == 0
    assert step_of(sized, "train_small")["n_tasks"] == 1

    looped = build_model(await swf.LoopFlow(store=store, echo=False).run())
    refine = step_of(looped, "refine")
    assert refine["n_tasks"] > 1
    assert [t["pass"] for t in refine["tasks"]] == list(range(refine["n_tasks"]))
    assert step_of(looped, "start")["tasks"][0]["pass"] is None


# --- a big foreach --------------------------------------------------------------------------


async def test_a_big_foreach_details_the_first_tasks_and_counts_the_rest(
    store: str, tmp_path: Path
) -> None:
    run = await rf.ManyFlow(store=store, echo=False).run(n=130, folder=str(tmp_path))
    model = build_model(run)
    body = step_of(model, "body")
    assert body["n_tasks"] == 130
    assert len(body["tasks"]) == _model.TASKS_PER_STEP == 50
    assert body["omitted"] == 80
    assert [t["index"] for t in body["tasks"]] == list(range(50))
    assert sum(1 for row in model["timeline"] if row[0] == 1) == 130
    first = artifacts_of(body["tasks"][7])
    assert first["square"]["preview"] == {"kind": "text", "text": "49"}


async def test_failed_tasks_past_the_first_are_detailed_too(store: str, tmp_path: Path) -> None:
    with pytest.raises(StepFailed):
        await rf.ManyFlow(store=store, echo=False).run(n=60, fail="55", folder=str(tmp_path))
    run = Flow("ManyFlow", store).latest_run
    assert run is not None
    body = step_of(build_model(run), "body")
    assert body["n_failed"] == 1 and body["n_tasks"] == 60
    shown = [t["index"] for t in body["tasks"]]
    assert shown == [*range(50), 55]
    assert body["omitted"] == 9
    assert body["tasks"][-1]["exception"] == "ValueError: item 55 fails"


# --- a run still going ----------------------------------------------------------------------


async def test_a_running_run_gives_its_tasks_so_far(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = tmp_path / "gate"
    monkeypatch.setenv("ASYNCFLOW_TEST_GATE", str(gate))
    seen: list[dict[str, Any]] = []

    async def watch() -> None:
        with anyio.fail_after(60):
            while not all(Path(f"{gate}.started{i}").exists() for i in (0, 1)):
                await anyio.sleep(0.02)
            while True:
                run = Flow("SlowFlow", store).latest_run
                assert run is not None
                model = await areport_model(run)
                if step_of(model, "work")["n_running"] == 2:
                    break
                await anyio.sleep(0.05)
        seen.append(model)
        gate.touch()

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch)
        await rf.SlowFlow(store=store, echo=False).run()
    (model,) = seen
    assert model["run"]["status"] == "running" and model["run"]["finished_at"] is None
    work = step_of(model, "work")
    assert (work["n_tasks"], work["n_running"], work["finished_at"]) == (2, 2, None)
    assert {t["status"] for t in work["tasks"]} == {"running"}
    assert sorted(t["index"] for t in work["tasks"]) == [0, 1]
    assert {t["stdout"] for t in work["tasks"]} == {"working on 0", "working on 1"}
    running = [row for row in model["timeline"] if row[4] == "running"]
    assert len(running) == 2 and all(row[3] is None for row in running)
    assert step_of(model, "start")["tasks"][0]["status"] == "succeeded"
    assert step_of(model, "join")["n_tasks"] == 0


# --- archives: hostile text, untrusted pickles ----------------------------------------------


@pytest.fixture
async def evil_archive(store: str, tmp_path: Path) -> tuple[Path, Path, str]:
    marker = tmp_path / "unpickled"
    run = await rf.EvilFlow(store=store, echo=False, tags=[rf.HOSTILE]).run(marker=str(marker))
    assert not marker.exists()
    with sqlite3.connect(store) as conn:  # an artifact name no flow can set, as an archive may
        conn.execute("UPDATE artifacts SET name = ? WHERE name = 'hostile'", (rf.HOSTILE,))
    conn.close()
    archive = tmp_path / "evil.afar"
    export_runs(archive, [Flow("EvilFlow", store)[run.id]])
    return archive, marker, run.id


async def test_hostile_text_from_an_archive_stays_plain_data(
    evil_archive: tuple[Path, Path, str],
) -> None:
    archive, _, run_id = evil_archive
    before = sha256(archive)
    model = build_model(Run(f"EvilFlow/{run_id}", str(archive)))
    assert sha256(archive) == before
    assert model["source"] == {"kind": "archive", "name": "evil.afar"}
    assert model["run"]["tags"] == [rf.HOSTILE]
    task = model["steps"][0]["tasks"][0]
    arts = artifacts_of(task)
    assert arts[rf.HOSTILE]["preview"] == {"kind": "text", "text": rf.HOSTILE}
    assert task["cards"][0]["components"] == [{"kind": "markdown", "text": rf.HOSTILE}]
    assert rf.HOSTILE.split("\u2028")[0] in task["stdout"]
    assert json.loads(json.dumps(model)) == model


async def test_an_untrusted_pickle_is_never_unpickled(
    evil_archive: tuple[Path, Path, str],
) -> None:
    archive, marker, run_id = evil_archive
    model = build_model(Run(f"EvilFlow/{run_id}", str(archive)))
    evil = artifacts_of(model["steps"][0]["tasks"][0])["evil"]
    assert not marker.exists()
    assert evil["encoding"] == "pickle" and evil["type"] == ""
    assert evil["preview"]["kind"] == "unavailable"
    assert "unpickling runs code" in evil["preview"]["text"]
    assert "asyncflow report ... --trust" in evil["preview"]["text"]
    # With trust asked for, it loads (and so runs its code): the test's proof it would.
    report_model(f"EvilFlow/{run_id}", store=archive, trust=True)
    assert marker.exists()


async def test_a_value_that_cannot_be_read_never_fails_the_report(store: str) -> None:
    run = await rf.FrameFlow(store=store, echo=False).run()
    with sqlite3.connect(store) as conn:  # the value's bytes damaged in place
        conn.execute(
            "UPDATE blobs SET data = zeroblob(length(data)) WHERE sha = "
            "(SELECT sha FROM artifacts WHERE name = 'frame' LIMIT 1)"
        )
    conn.close()
    model = build_model(Flow("FrameFlow", store)[run.id])
    frame = artifacts_of(model["steps"][0]["tasks"][0])["frame"]
    assert frame["preview"]["kind"] == "unavailable"
    assert "frame" in frame["preview"]["text"] or "do not match" in frame["preview"]["text"]


async def test_a_value_over_the_read_limit_is_not_read(
    rich: dict[str, Any], store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Details, "READ_BYTES", 1000)
    run = Flow("RichFlow", store).latest_run
    assert run is not None
    big = artifacts_of(step_of(build_model(run), "start")["tasks"][0])["big"]
    assert big["preview"]["kind"] == "unavailable"
    assert "a int32 array of shape (100000,)" in big["preview"]["text"]
    assert "larger than a report reads" in big["preview"]["text"]
    assert big["type"] == "ndarray"  # known from its header (found empty by an attacker)


async def test_odd_values_preview_as_what_they_are(store: str) -> None:
    # Found by an attacker: NaN hid as the min and max, a 5,000-digit int "raised".
    import numpy as np

    from asyncflow._report._previews import preview

    mixed = preview(np.array([2.0, np.nan, -1.0]))
    assert (mixed["min"], mixed["max"]) == ("-1.0 (1 NaN)", "2.0 (1 NaN)")
    assert preview(np.array([np.nan]))["min"] == "(1 NaN)"
    huge = preview(10**5000)
    assert huge["kind"] == "text" and huge["text"].startswith("an int of 16,610 bits, 0x")


# --- the awaitable twin never holds up the loop ---------------------------------------------


async def test_areport_model_reads_in_a_worker_thread(rich: dict[str, Any], store: str) -> None:
    threads: list[int] = []
    real = _model._build

    def spy(reader: Any) -> dict[str, Any]:
        threads.append(threading.get_ident())
        return real(reader)

    run = Flow("RichFlow", store).latest_run
    assert run is not None
    mp = pytest.MonkeyPatch()
    mp.setattr(_model, "_build", spy)
    try:
        model = await areport_model(run)
    finally:
        mp.undo()
    assert threads and threads[0] != threading.get_ident()
    assert model["run"]["id"] == rich["run"]["id"]
    assert os.path.exists(store)


@pytest.mark.parametrize("twin", ["areport_model", "awrite_report"])
async def test_the_awaitable_twins_never_hold_up_the_loop(
    store: str, tmp_path: Path, twin: str
) -> None:
    from asyncflow.report import awrite_report
    from tests.test_loop_lag import BOUND, best_of_three, max_lag

    run = await rf.ManyFlow(store=store, echo=False).run(n=300, folder=str(tmp_path))
    out = tmp_path / "run.html"

    async def work() -> object:
        if twin == "areport_model":
            return await areport_model(run)
        return await awrite_report(run, out, overwrite=True)

    tries = await best_of_three(lambda: max_lag(work))
    assert min(tries) < BOUND, tries


async def test_a_task_with_many_artifacts_previews_the_first_by_name(store: str) -> None:
    run = await rf.WideFlow(store=store, echo=False).run()
    task = step_of(build_model(run), "start")["tasks"][0]
    assert Details.ARTIFACTS_PER_TASK == 40
    assert [a["name"] for a in task["artifacts"]] == [f"value_{i:02d}" for i in range(40)]
    assert task["artifacts_omitted"] == 5


async def test_card_tables_and_texts_are_cut(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from asyncflow._report import _card_model
    from tests.flows import card_flows

    run = await card_flows.KindsFlow(store=store, echo=False).run()
    monkeypatch.setattr(_card_model, "TABLE_ROWS", 1)
    monkeypatch.setattr(_card_model, "TEXT_CHARS", 5)
    markdown, table = build_model(run)["steps"][0]["tasks"][0]["cards"][0]["components"][:2]
    assert markdown["text"].startswith("# Sco") and "more characters not shown" in markdown["text"]
    assert table["rows"] == [["0.91", "a"]] and table["total_rows"] == 2


async def test_card_images_past_the_report_budget_are_left_out_saying_so(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asyncflow._report import _card_model
    from tests.flows import card_flows

    run = await card_flows.KindsFlow(store=store, echo=False).run()
    # Room for the PNG (48 bytes) and the JPEG (40), not for the GIF after them.
    monkeypatch.setattr(_card_model, "IMAGE_BYTES", 100)
    components = build_model(run)["steps"][0]["tasks"][0]["cards"][0]["components"]
    kinds = [c["kind"] for c in components[3:7]]
    assert kinds == ["image", "image", "error", "error"]
    assert "left out: a report holds at most" in components[5]["message"]


async def test_huge_names_from_a_crafted_store_are_cut(store: str) -> None:
    # Found by an attacker: a 2 MB tag and a 1 MB flow name, planted with sqlite3, were
    # copied whole into the report, the name five times (15 MB for a 4-step run).
    run = await rf.RichFlow(store=store, echo=False, tags=["nightly"]).run(alpha=0.7)
    huge = "t" * 2_000_000
    with sqlite3.connect(store) as conn:
        conn.execute("UPDATE run_tags SET tag = ? WHERE tag = 'nightly'", (huge,))
        conn.execute("UPDATE artifacts SET name = ? WHERE name = 'text'", ("a" * 100_000,))
    conn.close()
    model = build_model(Run(f"RichFlow/{run.id}", store))
    cut = "t" * _model.NAME_CHARS + "... (2,000,000 characters)"
    assert model["run"]["tags"] == [cut]
    names = [a["name"] for s in model["steps"] for t in s["tasks"] for a in t["artifacts"]]
    assert "a" * _model.NAME_CHARS + "... (100,000 characters)" in names
    assert len(json.dumps(model)) < 200_000
