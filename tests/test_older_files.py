"""Stores and archives written before asyncflow kept events (schema 3, no ``events`` table)
stay usable: an archive reads in place and imports, a store is upgraded when opened, and an
archive of today imports into such a store. Their runs have no events: ``run.events()`` is
empty, following one ends at once, ``asyncflow events`` says why it prints none.

The files in tests/data/schema3 were written by the code before events (see its README), not
made here; each test unpacks fresh copies into tmp_path.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

import asyncflow
from asyncflow import Flow, StoreError, StoreFormatError
from asyncflow._store._manifest import content_digest
from asyncflow._store._schema import APPLICATION_ID, SCHEMA_VERSION, migrate

DATA = Path(__file__).resolve().parent / "data" / "schema3"
OLD = 3  # the schema of the files in DATA


def unpack(tmp: Path, name: str) -> str:
    path = tmp / name
    with gzip.open(DATA / f"{name}.gz") as src, open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return str(path)


def user_version(path: str) -> int:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def tables(path: str) -> set[str]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asyncflow", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def archive(tmp_path: Path) -> str:
    path = unpack(tmp_path, "old_archive.afa")
    assert user_version(path) == OLD < SCHEMA_VERSION and "events" not in tables(path)
    return path


@pytest.fixture
def store(tmp_path: Path) -> str:
    path = unpack(tmp_path, "old_store.db")
    assert user_version(path) == OLD and "events" not in tables(path)
    return path


def _check_old_run(run: asyncflow.Run) -> None:
    assert run.successful and run.data.total == 60
    assert [t.data.x for t in run["body"]] == [10, 20, 30]
    assert run["start"].task.stdout == "hello from an old run\n"
    assert run.events() == []


# --- an archive written before events -----------------------------------------------------------


def test_an_archive_written_before_events_reads_in_place_and_its_runs_have_no_events(
    archive: str,
) -> None:
    before = Path(archive).read_bytes()
    info = asyncflow.read_archive(archive, verify=True)
    assert info.schema_version == OLD and info.runs == ("OldFlow/1",)
    _check_old_run(Flow("OldFlow", store=archive).latest_run)

    async def follow() -> list[object]:
        async with Flow.aopen("OldFlow", store=archive) as flow:
            run = await flow.alatest_run()
            with anyio.fail_after(10):  # ends at once: the run ended, with no RunFinished
                return [ev async for ev in run.aevents(follow=True)]

    assert anyio.run(follow) == []
    assert Path(archive).read_bytes() == before  # read-only: never migrated


def test_an_archive_written_before_events_imports_into_a_new_store(
    archive: str, tmp_path: Path
) -> None:
    target = str(tmp_path / "new.db")
    [run] = asyncflow.import_archive(archive, store=target)
    assert user_version(target) == SCHEMA_VERSION
    _check_old_run(Flow("OldFlow", store=target)[str(run.id)])
    assert run.imported_from is not None


def test_an_archive_written_before_events_exports_again_as_a_current_archive(
    archive: str, tmp_path: Path
) -> None:
    again = str(tmp_path / "again.afa")
    asyncflow.export_runs(again, [Flow("OldFlow", store=archive).latest_run])
    assert asyncflow.read_archive(again, verify=True).schema_version == SCHEMA_VERSION
    _check_old_run(Flow("OldFlow", store=again).latest_run)


def test_the_command_line_reads_and_imports_an_archive_written_before_events(
    archive: str, tmp_path: Path
) -> None:
    shown = cli(tmp_path, "archive", archive, "--verify")
    assert shown.returncode == 0, shown.stderr
    assert f"(schema {OLD})" in shown.stdout and "every record and every value" in shown.stdout
    runs = cli(tmp_path, "runs", "--store", archive)
    assert runs.returncode == 0 and "OldFlow  1    succeeded" in runs.stdout
    logs = cli(tmp_path, "logs", "OldFlow/1/start", "--store", archive)
    assert logs.stdout == "[OldFlow/1/start/1] hello from an old run\n"
    for follow in ((), ("--follow",), ("--json",)):
        events = cli(tmp_path, "events", "OldFlow/1", "--store", archive, *follow)
        assert events.returncode == 0 and events.stdout == ""
        assert "OldFlow/1 recorded no events" in events.stderr
        assert "before asyncflow kept events" in events.stderr
    done = cli(tmp_path, "import", archive, "--store", "new.db")
    assert done.returncode == 0, done.stderr
    assert "OldFlow/1: imported as OldFlow/1" in done.stdout


def test_an_archive_that_says_schema_3_but_holds_an_events_table_is_refused(
    archive: str,
) -> None:
    # A table of a later schema in a file that claims an earlier one: not what asyncflow
    # wrote, whatever the digest says (here it is made to match).
    with contextlib.closing(sqlite3.connect(archive)) as conn, conn:
        conn.execute(
            "CREATE TABLE events (run_id INTEGER NOT NULL, seq INTEGER NOT NULL, "
            "data BLOB NOT NULL, PRIMARY KEY (run_id, seq)) WITHOUT ROWID"
        )
        conn.execute("INSERT INTO events VALUES (1, 1, x'00')")
        manifest = json.loads(
            conn.execute("SELECT value FROM store_info WHERE key = 'archive'").fetchone()[0]
        )
        manifest["digest"] = content_digest(conn, manifest=manifest)
        conn.execute(
            "UPDATE store_info SET value = ? WHERE key = 'archive'", (json.dumps(manifest),)
        )
    with pytest.raises(StoreError) as err:
        Flow("OldFlow", store=archive)
    assert type(err.value) is StoreError
    assert "is damaged or was changed after export" in str(err.value)
    assert "unknown table 'events'" in str(err.value)


def test_an_archive_written_before_events_with_a_changed_record_is_refused(
    archive: str,
) -> None:
    # The digest of an archive from before events covers the tables it has.
    with contextlib.closing(sqlite3.connect(archive)) as conn, conn:
        conn.execute("UPDATE tasks SET stdout = 'forged\n' WHERE step = 'start'")
    with pytest.raises(StoreError, match="do not match the digest"):
        Flow("OldFlow", store=archive)


def test_an_archive_of_a_schema_older_than_the_last_change_of_tables_is_refused_clearly(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "older.afa")
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("BEGIN")
        migrate(conn, 0, until=2)  # columns were added to runs and blobs in schema 3
        manifest = {"asyncflow_version": "0.0.7", "format": "asyncflow-archive/1"}
        conn.execute("INSERT INTO store_info VALUES ('archive', ?)", (json.dumps(manifest),))
        conn.execute("COMMIT")
    before = Path(path).read_bytes()
    for read in (
        lambda: Flow("X", store=path),
        lambda: asyncflow.read_archive(path),
        lambda: asyncflow.import_archive(path, store=str(tmp_path / "t.db")),
    ):
        with pytest.raises(StoreFormatError) as err:
            read()
        message = str(err.value)
        assert f"the archive {path!r} was written by an older asyncflow (version '0.0.7', " in (
            message
        )
        assert "schema 2" in message and "Import it into a store with the asyncflow" in message
    assert Path(path).read_bytes() == before
    assert not (tmp_path / "t.db").exists()


# --- a store written before events ----------------------------------------------------------


def test_a_store_written_before_events_is_upgraded_when_opened_and_runs_on(
    store: str,
) -> None:
    _check_old_run(Flow("OldFlow", store=store).latest_run)
    assert user_version(store) == SCHEMA_VERSION and "events" in tables(store)
    sys.path.insert(0, str(DATA))
    try:
        from oldflow import OldFlow  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(DATA))
    run = anyio.run(lambda: OldFlow(store=store, echo=False).run())
    new = Flow("OldFlow", store=store)[str(run.id)]
    assert new.data.total == 60 and new.events()[-1].kind == "run_finished"
    _check_old_run(Flow("OldFlow", store=store)["1"])


def test_an_archive_of_today_imports_into_a_store_written_before_events(
    store: str, tmp_path: Path
) -> None:
    fresh = str(tmp_path / "fresh.db")
    shutil.copy(store, fresh)  # upgraded by the run below; `store` stays at schema 3
    sys.path.insert(0, str(DATA))
    try:
        from oldflow import OldFlow
    finally:
        sys.path.remove(str(DATA))
    run = anyio.run(lambda: OldFlow(store=fresh, echo=False).run())
    today = str(tmp_path / "today.afa")
    Flow("OldFlow", store=fresh)[str(run.id)].export(today)
    kinds = [ev.kind for ev in Flow("OldFlow", store=today).latest_run.events()]
    assert user_version(store) == OLD
    [imported] = asyncflow.import_archive(today, store=store)
    assert user_version(store) == SCHEMA_VERSION
    got = Flow("OldFlow", store=store)[str(imported.id)]
    assert [ev.kind for ev in got.events()] == kinds and kinds[-1] == "run_finished"
    _check_old_run(Flow("OldFlow", store=store)["1"])
