"""Cards are stored (issue 14, first slice): when a task with @card ends, succeeded or failed,
each card's components are stored as data in the task's own commit, one content-addressed
blob per card; they travel in archives, gc keeps and drops them with their run, resume's
clones keep them, and the client reads them back (``task.cards``, ``get_cards``). README,
"Cards"; the stored form is ``asyncflow/_spec/_card_form.py``."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

import asyncflow
from asyncflow import Flow, FlowSpec, StoreError, UsageError, card, current, step
from asyncflow._store._format import ARCHIVE_KEY
from asyncflow._store._manifest import content_digest
from asyncflow._store._schema import SCHEMA_VERSION
from asyncflow.cards import Card, Markdown, Table, aget_cards, get_cards
from tests.flows import card_flows as cf

FLOW_FILE = Path(cf.__file__)
OLD = Path(__file__).resolve().parent / "data" / "schema4"


def query(path: str, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql, args).fetchall()


def texts(card: Card) -> list[str]:
    return [c.text for c in card]


# --- what is stored -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_every_component_kind_is_stored_as_data_and_bad_ones_as_errors(store: str) -> None:
    run = await cf.KindsFlow(store=store, echo=False).run()
    assert run.successful  # no component, however bad, fails the step
    with Flow("KindsFlow", store=store) as flow:
        task = flow[run.id]["start"].task
        main, extra = task.cards
    assert (main.index, main.id, main.type) == (0, None, "default")
    assert (extra.index, extra.id, extra.type, texts(extra)) == (1, "extra", "notes", ["notes"])
    parts = main.components
    assert [p.kind for p in parts] == (
        ["markdown", "table", "table", "image", "image", "image", "image", "artifact", "artifact"]
        + ["error"] * 6
    )
    assert parts[0].text == "# Scores <b>&</b>"  # as written: escaping is the renderer's
    assert parts[1].headers == ("train", "test")
    assert parts[1].rows == (("0.91", "a"), ("None", "[1, 2]"))
    assert parts[2].rows[0][0] == "*cell*" and len(parts[2].rows[0][1]) == 200
    assert parts[2].rows[0][1].endswith("...")
    images = [(p.mime, p.data, p.label) for p in parts[3:7]]
    assert images == [
        ("image/png", cf.PNG, "png"),
        ("image/jpeg", cf.JPEG, "jpeg"),
        ("image/gif", cf.GIF, "gif"),
        ("image/svg+xml", cf.SVG, "svg"),
    ]
    assert (parts[7].name, parts[7].preview) == ("mapping", "{'k': [0, 1, 2]}")
    assert parts[8].name is None and len(parts[8].preview) <= 2000
    errors = [p.message for p in parts[9:]]
    assert "are not a PNG, JPEG, GIF or SVG file" in errors[0]
    assert "Table cell [0][1]" in errors[1] and "no repr for you" in errors[1]
    assert "a str is not a card component" in errors[2] and "Markdown, Table" in errors[2]
    assert "over the limit of 1048576" in errors[3]
    assert "101 rows x 1000 columns is over the limit of 100000 cells" in errors[4]
    assert "over the limit of 8388608 bytes" in errors[5]
    with pytest.raises(AttributeError):
        parts[0].text = "changed"  # type: ignore[misc]


@pytest.mark.anyio
async def test_a_failed_task_keeps_its_card(store: str) -> None:
    with pytest.raises(asyncflow.StepFailed):
        await cf.FailingCardFlow(store=store, echo=False).run()
    with Flow("FailingCardFlow", store=store) as flow:
        task = flow.latest_run["boom"].task
        assert task.status == "failed" and "the step failed" in (task.exception or "")
        [card] = task.cards
        assert texts(card) == ["before the failure"]
        assert await task.acards() == [card]


@pytest.mark.anyio
async def test_a_foreach_of_cards_stores_equal_cards_once(store: str) -> None:
    run = await cf.CardFan(store=store, echo=False).run(width=4)
    with Flow("CardFan", store=store) as flow:
        tasks = list(flow[run.id]["each"])
        cards = [t.cards for t in tasks]
    assert [texts(c[0]) for c in cards] == [["the same card"]] * 3 + [["the last"]]
    assert len({c[0].hash for c in cards}) == 2
    ids = ",".join(str(t.id) for t in tasks)
    shas = query(store, f"SELECT DISTINCT sha FROM cards WHERE task_id IN ({ids})")
    assert len(shas) == 2  # one blob per distinct card
    stored = query(store, "SELECT count(*) FROM blobs WHERE sha IN (SELECT sha FROM cards)")
    assert stored == [(3,)]  # start's card, the shared one, the last one
    # Stats count each card row's bytes as referenced (what the runs take without dedup).
    sizes = [
        query(store, f"SELECT coalesce(sum(b.size), 0) FROM {t} AS r JOIN blobs AS b USING (sha)")
        for t in ("cards", "artifacts", "run_params")
    ]
    assert asyncflow.stats(store).referenced_bytes == sum(int(r[0][0]) for r in sizes)


@pytest.mark.anyio
async def test_get_cards_takes_a_task_or_a_pathspec_and_filters_like_metaflow(
    store: str,
) -> None:
    run = await cf.KindsFlow(store=store, echo=False).run()
    with Flow("KindsFlow", store=store) as flow:
        task = flow[run.id]["start"].task
        assert [c.id for c in get_cards(task)] == [None, "extra"]
        assert [c.id for c in get_cards(task, id="extra")] == ["extra"]
        assert [c.type for c in get_cards(task, type="default")] == ["default"]
        by_path = get_cards(task.pathspec, store=store, follow_resumed=False)
        assert by_path == task.cards
        assert await aget_cards(task.pathspec, type="notes", store=store) == [task.cards[1]]
        assert await aget_cards(task, id="nope") == []
        assert flow[run.id]["end"].task.cards == []
    with pytest.raises(UsageError, match=r"get_cards\(3\): pass a Task"):
        get_cards(3)  # type: ignore[arg-type]


# --- a crash, resume, archives, gc ----------------------------------------------------------


def _wait(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_a_killed_run_leaves_whole_cards_only(tmp_path: Path, store: str) -> None:
    marker = tmp_path / "marker"
    args = ["run", "--quiet", "--store", store, "--marker", str(marker), "--width", "12"]
    proc = subprocess.Popen(
        [sys.executable, str(FLOW_FILE), *args],
        env={**os.environ, "CARDFLOW_HANG": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait(lambda: marker.exists() or proc.poll() is not None, "the hanging task")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""

        def some_committed() -> bool:
            try:
                return query(store, "SELECT count(*) FROM tasks WHERE step = 'each'")[0][0] >= 3
            except sqlite3.Error:
                return False

        _wait(some_committed, "the commits")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
    assert query(store, "PRAGMA integrity_check") == [("ok",)]
    with Flow("CardFan", store=store) as flow:
        run = flow.latest_run
        assert run.status == "crashed"
        done = list(run["each"])
        assert 3 <= len(done) < 12 and cf.HANG not in [t.index for t in done]
        for task in done:  # every committed task has its whole card, image included
            [card] = task.cards
            assert [p.kind for p in card] == ["markdown", "image"]
            assert card[1].data.startswith(cf.PNG) and len(card[1].data) > 300_000
        last = done[-1]
        assert anyio.run(last.acards) == last.cards  # decoded in a worker thread: big
    rows = query(store, "SELECT count(*) FROM cards WHERE sha NOT IN (SELECT sha FROM blobs)")
    assert rows == [(0,)]


@pytest.mark.anyio
async def test_resume_clones_the_cards_of_cloned_tasks(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARDFLOW_FAIL", "1")
    with pytest.raises(asyncflow.StepFailed):
        await cf.CardFan(store=store, echo=False).run(width=3)
    monkeypatch.delenv("CARDFLOW_FAIL")
    with Flow("CardFan", store=store) as flow:
        origin = flow.latest_run
        before = {t.index: t.cards for t in origin["each"]}
    resumed = await cf.CardFan(store=store, echo=False).resume(origin.id)
    with Flow("CardFan", store=store) as flow:
        run = flow[resumed.id]
        for task in run["each"]:
            assert task.origin_task_id is not None
            assert task.cards == before[task.index]
        assert texts(run["start"].task.cards[0]) == ["fan of 3"]


@pytest.mark.anyio
async def test_cards_travel_in_archives_and_gc_keeps_and_drops_them_with_their_run(
    tmp_path: Path, store: str
) -> None:
    kept = await cf.KindsFlow(store=store, echo=False).run()
    gone = await cf.CardFan(store=store, echo=False).run(width=2)
    archive = str(tmp_path / "kinds.afa")
    with Flow("KindsFlow", store=store) as flow:
        cards = flow[kept.id]["start"].task.cards
        flow[kept.id].export(archive)
    assert asyncflow.read_archive(archive, verify=True).schema_version == SCHEMA_VERSION
    with Flow("KindsFlow", store=archive) as flow:
        assert flow.latest_run["start"].task.cards == cards
    target = str(tmp_path / "target.db")
    [imported] = asyncflow.import_archive(archive, store=target)
    with Flow("KindsFlow", store=target) as flow:
        assert flow[str(imported.id)]["start"].task.cards == cards
    # gc: the deleted run's card blobs go, the kept run's stay.
    fan_shas = query(store, "SELECT sha FROM cards WHERE run_id = ?", (gone.id,))
    kinds_shas = query(store, "SELECT sha FROM cards WHERE run_id = ?", (kept.id,))
    asyncflow.gc(store=store, flow="CardFan", older_than=0)
    blobs = {r[0] for r in query(store, "SELECT sha FROM blobs")}
    assert not {r[0] for r in fan_shas} & blobs
    assert {r[0] for r in kinds_shas} <= blobs
    with Flow("KindsFlow", store=store) as flow:
        assert flow[kept.id]["start"].task.cards == cards


# --- hostile files --------------------------------------------------------------------------


def _reseal(conn: sqlite3.Connection) -> None:
    (text,) = conn.execute("SELECT value FROM store_info WHERE key = ?", (ARCHIVE_KEY,)).fetchone()
    manifest = json.loads(text)
    manifest["digest"] = content_digest(conn)
    conn.execute(
        "UPDATE store_info SET value = ? WHERE key = ?",
        (json.dumps(manifest, sort_keys=True), ARCHIVE_KEY),
    )


CRAFTED = {
    "a card naming a missing value": (
        "UPDATE cards SET sha = zeroblob(32)",
        "value(s) its runs refer to are missing",
    ),
    "a card index of the wrong type": (
        "UPDATE cards SET idx = 'i' || idx",
        "a record of table cards holds a value asyncflow never writes (idx: text)",
    ),
    "a card type of the wrong type": (
        "UPDATE cards SET type = x'00'",
        "(type: blob)",
    ),
    "a huge card index": (
        "UPDATE cards SET idx = idx + 1000000",
        "(an index out of range)",
    ),
    "a card of no task": (
        "UPDATE cards SET task_id = task_id + 1000",
        "(no task)",
    ),
    "a card naming a pickle": (
        "UPDATE cards SET sha = (SELECT sha FROM artifacts WHERE name = 'done')",
        "(a value that is not msgpack)",
    ),
}


@pytest.fixture(scope="module")
def card_archive(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("crafted")
    store = str(folder / "store.db")
    run = anyio.run(lambda: cf.KindsFlow(store=store, echo=False).run())
    path = str(folder / "kinds.afa")
    with Flow("KindsFlow", store=store) as flow:
        flow[run.id].export(path)
    return path


@pytest.mark.parametrize("name", list(CRAFTED))
def test_a_crafted_archive_with_hostile_card_rows_is_refused(
    card_archive: str, tmp_path: Path, name: str
) -> None:
    edit, said = CRAFTED[name]
    path = str(tmp_path / "crafted.afa")
    shutil.copy(card_archive, path)
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        if "pickle" in name:  # make the value named a pickle: an artifact of pickled bytes
            conn.execute(
                "UPDATE blobs SET encoding = 'pickle' WHERE sha = "
                "(SELECT sha FROM artifacts WHERE name = 'done')"
            )
        conn.execute(edit)
        _reseal(conn)
    for read in (
        lambda: asyncflow.read_archive(path, verify=True),
        lambda: Flow("KindsFlow", store=path).latest_run["start"].task.cards,
        lambda: asyncflow.import_archive(path, store=str(tmp_path / "t.db")),
    ):
        with pytest.raises(StoreError) as err:
            read()
        assert said in str(err.value) and "is damaged or was changed after export" in str(err.value)


@pytest.mark.anyio
async def test_a_store_card_that_is_not_a_card_is_a_clear_error(store: str) -> None:
    done = await cf.KindsFlow(store=store, echo=False).run()
    with contextlib.closing(sqlite3.connect(store)) as conn, conn:
        conn.execute("UPDATE cards SET sha = (SELECT sha FROM artifacts WHERE name = 'done')")
    with Flow("KindsFlow", store=store) as flow:
        task = flow[done.id]["start"].task
        with pytest.raises(StoreError, match=r"cannot read card 0 of task KindsFlow/"):
            assert task.cards
        with pytest.raises(StoreError, match="a card is not a list of components"):
            await task.acards()
    # A card's value is never unpickled, whatever the row says.
    with contextlib.closing(sqlite3.connect(store)) as conn, conn:
        conn.execute("UPDATE blobs SET encoding = 'pickle' WHERE sha IN (SELECT sha FROM cards)")
    with (
        Flow("KindsFlow", store=store) as flow,
        pytest.raises(StoreError, match="its value is pickle, not msgpack"),
    ):
        assert flow[done.id]["start"].task.cards


# --- files of the previous schema -------------------------------------------------------------


def _unpack(tmp: Path, name: str) -> str:
    path = tmp / name
    with gzip.open(OLD / f"{name}.gz") as src, open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return str(path)


def _version(path: str) -> int:
    return int(query(path, "PRAGMA user_version")[0][0])


def test_an_archive_of_schema_4_reads_imports_and_has_no_cards(tmp_path: Path) -> None:
    archive = _unpack(tmp_path, "old_archive.afa")
    before = Path(archive).read_bytes()
    assert _version(archive) == 4 < SCHEMA_VERSION
    assert asyncflow.read_archive(archive, verify=True).schema_version == 4
    with Flow("OldFlow", store=archive) as flow:
        run = flow.latest_run
        assert run.data.total == 60 and run["start"].task.cards == []
    assert Path(archive).read_bytes() == before
    target = str(tmp_path / "new.db")
    [imported] = asyncflow.import_archive(archive, store=target)
    with Flow("OldFlow", store=target) as flow:
        assert [t.cards for t in flow[str(imported.id)]["body"]] == [[], [], []]
    again = str(tmp_path / "again.afa")
    with Flow("OldFlow", store=archive) as flow:
        asyncflow.export_runs(again, [flow.latest_run])
    assert asyncflow.read_archive(again, verify=True).schema_version == SCHEMA_VERSION


@pytest.mark.anyio
async def test_a_store_of_schema_4_is_upgraded_and_stores_cards(tmp_path: Path) -> None:
    store = _unpack(tmp_path, "old_store.db")
    assert _version(store) == 4
    with Flow("OldFlow", store=store) as flow:
        assert flow.latest_run["start"].task.cards == []
    assert _version(store) == SCHEMA_VERSION
    run = await cf.KindsFlow(store=store, echo=False).run()
    with Flow("KindsFlow", store=store) as flow:
        assert len(flow[run.id]["start"].task.cards) == 2


def test_python_flow_card_points_to_the_report(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(FLOW_FILE), "card", "view", "start"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "cards are drawn in the run's report, one HTML file: `asyncflow report" in done.stderr
    assert "run.html#task=STEP/ID" in done.stderr


# --- pandas and matplotlib (both in the dev extras, so this runs in CI) ---------------------


def test_a_dataframe_table_and_a_matplotlib_figure_are_stored(store: str, tmp_path: Path) -> None:
    flow_file = Path(cf.__file__).parent / "plot_flow.py"
    done = subprocess.run(
        [sys.executable, str(flow_file), "run", "--quiet", "--store", store],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    with Flow("PlotFlow", store=store) as flow:
        [card] = flow.latest_run["start"].task.cards
    frame, head, whole = card[0], card[1], card[2]
    assert frame.headers == ("name", "score") and frame.rows == (("a", "0.5"), ("b", "1.25"))
    assert (len(head.rows), len(whole.rows)) == (100, 150)  # truncate=True: the first 100
    assert (card[3].kind, card[3].mime, card[3].label) == ("image", "image/png", "line")
    assert card[3].data.startswith(b"\x89PNG")
    assert (card[-1].mime, card[-1].label) == ("image/png", "pil")  # matplotlib brings PIL


class ScoreFlow(FlowSpec):
    @card
    @step
    def start(self) -> None:
        current.card.append(Markdown("# Scores"))
        current.card.append(Table([[0.91, 0.88]], headers=["train", "test"]))
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


@pytest.mark.anyio
async def test_the_readmes_card_snippet_reads_the_cards_back(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    [snippet] = [
        b for b in re.findall(r"```python\n(.*?)```", text, re.DOTALL) if "get_cards(" in b
    ]
    await ScoreFlow(store=str(tmp_path / "asyncflow.db"), echo=False).run()
    env = {k: v for k, v in os.environ.items() if k != "ASYNCFLOW_STORE"}
    done = subprocess.run(
        [sys.executable, "-c", snippet],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:3] == ["0 None default", "markdown # Scores", "table ('train', 'test')"]
    assert lines[3].startswith("[Card(index=0, id=None, type='default'")
