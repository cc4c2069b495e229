"""Rows planted in a store for a run id not given out yet never become part of that run.

A store file is data that someone else may have prepared. Nothing in it ties a task, an
artifact, a parameter or a tag to the row of its run (foreign keys are off), so an attacker
can write rows for the *next* run id: artifacts pointing at a correctly hashed, unsigned
pickle of theirs, tasks, tags. The victim's run that later receives the id must start with
exactly the rows it writes (``_store/_runids.py``): otherwise the victim's own, trusted run
shows the attacker's pickle, the error tells the victim to ``asyncflow trust`` the run, and
trusting it signs the attacker's bytes (code runs); an export carries them to a colleague.

Each test plays the attacker with ``sqlite3`` on the file; ``Alarm`` is a pickle that creates
a file when loaded, which must never appear. Also here: a run-id counter at its end is not a
full disk, and a signing key file others may read is refused.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import asyncflow
from asyncflow import Flow, StoreError
from asyncflow._codecs import encode
from asyncflow._store._gc import DELETED_KEY
from asyncflow._store._runids import MAX_RUN_ID
from asyncflow._store._schema import run_tables
from asyncflow._store._store import Store
from asyncflow._store._trust import TrustKey
from tests._storefixture import T, write_run
from tests.flows.attacker_flows import Keeper
from tests.flows.trust_flows import Alarm, Point, TrustFlow

ROOT = Path(__file__).resolve().parents[1]

# --- the attacker's tools ---------------------------------------------------------------------


def execute(path: str, sql: str, params: Any = ()) -> None:
    """Statements on ``path`` with plain sqlite3, as anyone with the file could."""
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        if isinstance(params, list):
            conn.executemany(sql, params)
        else:
            conn.execute(sql, params)


def query(path: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql, params).fetchall()


def next_id(path: str) -> int:
    """The id the store gives its next run (as the attacker works it out)."""
    ((seq,),) = query(path, "SELECT seq FROM sqlite_sequence WHERE name = 'runs'")
    ((top,),) = query(path, "SELECT coalesce(max(id), 0) FROM runs")
    return max(int(seq), int(top)) + 1


def plant_alarm_blob(path: str, alarm: Path) -> bytes:
    """A correctly hashed pickle blob that creates ``alarm`` when loaded; no signature."""
    enc = encode(Alarm(str(alarm)))
    assert enc.encoding == "pickle"
    execute(
        path,
        "INSERT INTO blobs (sha, encoding, meta, size, data, nchunks, mac) "
        "VALUES (?, ?, ?, ?, ?, 0, NULL)",
        (enc.sha, enc.encoding, enc.meta, enc.size, bytes(memoryview(enc.payload))),
    )
    return enc.sha


def plant_for(path: str, run_id: int, alarm: Path) -> bytes:
    """Artifact rows named ``evil`` in tasks 1..20 and a parameter ``evilparam`` for
    ``run_id``, all pointing at the alarm; returns its sha."""
    sha = plant_alarm_blob(path, alarm)
    execute(
        path,
        "INSERT INTO artifacts (run_id, task_id, name, sha) VALUES (?, ?, 'evil', ?)",
        [(run_id, task, sha) for task in range(1, 21)],
    )
    execute(path, "INSERT INTO run_params VALUES (?, 'evilparam', ?)", (run_id, sha))
    return sha


def read_everything(run: asyncflow.Run) -> None:
    """Every parameter and every artifact of every task of ``run``."""
    assert run.parameters is not None
    for step_ in run:
        for task in step_:
            for name in task.data:
                getattr(task.data, name)


def rows_naming(path: str, run_id: int) -> dict[str, int]:
    counts = {
        table: int(query(path, f"SELECT count(*) FROM {table} WHERE run_id = ?", (run_id,))[0][0])
        for table in run_tables()
    }
    # An events row holds the events of one writer batch: how many a run has varies.
    counts["events"] = min(counts["events"], 1)
    return counts


# --- 1. artifacts and parameters for the next id: never the victim's, never signed -------------


@pytest.mark.anyio
async def test_rows_planted_for_the_next_run_id_never_enter_the_victims_trusted_run(
    store: str, tmp_path: Path
) -> None:
    alarm = tmp_path / "alarm"
    await TrustFlow(store=store, echo=False).run()  # any store with one run, handed over
    victim_id = next_id(store)
    sha = plant_for(store, victim_id, alarm)

    run = await TrustFlow(store=store, echo=False).run()
    assert int(run.id) == victim_id
    mine = Flow("TrustFlow", store)[str(victim_id)]
    assert mine.trusted
    assert set(mine.parameters) == {"origin", "fail", "alarm"}  # no evilparam
    for step_ in mine:
        for task in step_:
            assert "evil" not in task.data, task.pathspec
    mine.trust()  # the victim trusts their own run, as the attacker's message asked
    read_everything(Flow("TrustFlow", store)[str(victim_id)])
    assert query(store, "SELECT mac FROM blobs WHERE sha = ?", (sha,)) == [(None,)]
    assert query(store, "SELECT count(*) FROM artifacts WHERE sha = ?", (sha,)) == [(0,)]
    assert not alarm.exists()


def cli(*argv: str, key: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ASYNCFLOW_KEY_FILE": str(key), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "asyncflow", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.mark.anyio
async def test_a_planted_row_never_travels_in_an_export_to_a_colleague_who_trusts_it(
    store: str, tmp_path: Path
) -> None:
    alarm = tmp_path / "alarm"
    await Keeper(store=store, echo=False).run()
    victim_id = next_id(store)
    plant_for(store, victim_id, alarm)
    await Keeper(store=store, echo=False).run()  # the victim's own run ...
    archive = tmp_path / "mine.afa"
    Flow("Keeper", store)[str(victim_id)].export(str(archive))  # ... shared with a colleague
    assert query(str(archive), "SELECT count(*) FROM artifacts WHERE name = 'evil'") == [(0,)]
    assert query(str(archive), "SELECT count(*) FROM run_params") == [(0,)]

    colleague, theirs = tmp_path / "colleague-key", str(tmp_path / "colleague.db")
    done = cli("import", str(archive), "--trust", "--store", theirs, key=colleague)
    assert done.returncode == 0, done.stderr
    for task in ("start/1", "end/2"):
        shown = cli("show", f"Keeper/1/{task}", "--store", theirs, key=colleague)
        assert shown.returncode == 0, shown.stderr
        assert "evil" not in shown.stdout
    dumped = cli("dump", "Keeper/1/end/2/evil", "--store", theirs, key=colleague)
    assert dumped.returncode == 2 and "has no artifact 'evil'" in dumped.stderr
    assert not alarm.exists()


def test_rows_planted_in_the_target_for_an_imported_runs_id_are_not_imported_or_signed(
    store: str, tmp_path: Path
) -> None:
    alarm = tmp_path / "alarm"
    write_run(store, "Theirs", [T("start", artifacts={"point": Point(3)}), T("end")])
    archive = str(tmp_path / "theirs.afa")
    Flow("Theirs", store)["1"].export(archive)

    target = str(tmp_path / "target.db")  # a store the attacker prepared, one run in it
    write_run(target, "Other", [T("end", artifacts={"n": 1})])
    new_id = next_id(target)
    sha = plant_for(target, new_id, alarm)
    [run] = asyncflow.import_archive(archive, store=target, trust=True)
    assert int(run.id) == new_id and run.trusted
    assert set(run.parameters) == set()
    assert sorted(run["start"].task.data) == ["point"]
    read_everything(run)
    assert query(target, "SELECT mac FROM blobs WHERE sha = ?", (sha,)) == [(None,)]
    assert not alarm.exists()


@pytest.mark.anyio
@pytest.mark.parametrize("table", run_tables())
async def test_a_new_run_id_is_claimed_clean_in_every_table_keyed_by_run_id(
    store: str, tmp_path: Path, table: str
) -> None:
    await Keeper(store=store, echo=False).run()
    victim_id = next_id(store)
    sha = plant_alarm_blob(store, tmp_path / "alarm")
    row = {  # one row naming the next id, in the table under test only
        "artifacts": (victim_id, 99, "planted", sha),
        "attempts": (victim_id, 1, 7, "failed", 0.0, 0.0, "planted", None, None, None),
        "run_params": (victim_id, "planted", sha),
        "run_tags": (victim_id, "planted"),
        "events": (victim_id, 99, b"planted"),
        "cards": (victim_id, 99, 0, "planted", "planted", sha),
        "tasks": (victim_id, 99, "end", "", "ok", 0.0, 0.0, "planted", None, None, None, 0, None),
    }[table]
    execute(store, f"INSERT INTO {table} VALUES ({', '.join('?' * len(row))})", row)
    before = rows_naming(store, victim_id)
    assert before[table] == 1

    await Keeper(store=store, echo=False).run()
    text = " ".join(
        str(v)
        for r in query(store, f"SELECT * FROM {table} WHERE run_id = ?", (victim_id,))
        for v in r
    )
    assert "planted" not in text and "99" not in text.split()
    assert rows_naming(store, victim_id) == rows_naming(store, 1)  # the same shape as run 1


# --- 2. planted tasks: never shown as the run's, never cloned by a resume ----------------------


@pytest.mark.anyio
async def test_tasks_planted_for_the_next_run_id_are_not_shown_or_cloned_by_resume(
    store: str,
) -> None:
    first = await TrustFlow(store=store, echo=False).run()
    assert first.data.total == 1 + 10 + 20
    victim_id = next_id(store)
    # Two extra body tasks for the next run, made of run 1's own (signed) body task rows.
    ((body_id,),) = query(
        store, "SELECT id FROM tasks WHERE run_id = 1 AND step = 'body' ORDER BY id LIMIT 1"
    )
    for tid, path in ((100, "7"), (101, "0")):
        execute(
            store,
            "INSERT INTO tasks (run_id, id, step, path, status, started_at, finished_at, stdout) "
            "VALUES (?, ?, 'body', ?, 'succeeded', 0, 0, 'planted')",
            (victim_id, tid, path),
        )
        execute(
            store,
            "INSERT INTO artifacts SELECT ?, ?, name, sha FROM artifacts "
            "WHERE run_id = 1 AND task_id = ?",
            (victim_id, tid, body_id),
        )

    run = await TrustFlow(store=store, echo=False).run()
    assert int(run.id) == victim_id and run.data.total == 31
    mine = Flow("TrustFlow", store)[str(victim_id)]
    assert len(mine["body"]) == 2
    assert all(task.stdout != "planted" for task in mine["body"])
    resumed = await TrustFlow(store=store, echo=False).resume(victim_id, step="join")
    assert resumed.data.total == 31  # the join saw the run's two body tasks, no more


# --- 3. planted tags: a new run is born with the tags it was given, no others -----------------


@pytest.mark.anyio
@pytest.mark.parametrize("tag", ["scratch", "keep"])
async def test_tags_planted_for_future_run_ids_never_tag_the_victims_runs(
    store: str, tag: str
) -> None:
    await Keeper(store=store, echo=False).run()
    execute(store, "INSERT INTO run_tags VALUES (?, ?)", [(i, tag) for i in range(2, 1001)])
    await Keeper(store=store, echo=False).run()
    await Keeper(store=store, echo=False).run()
    with Flow("Keeper", store) as flow:
        assert [r.tags for r in (flow["2"], flow["3"])] == [frozenset(), frozenset()]
    if tag == "scratch":  # the victim's routine cleanup deletes none of them
        assert asyncflow.gc(store, tag="scratch").deleted == ()
    else:  # nor are they kept for ever
        report = asyncflow.gc(store, keep_last=1)
        assert report.deleted == ("Keeper/1", "Keeper/2")


# --- sqlite_sequence: an id given out again, or far ahead, is claimed clean too --------------


@pytest.mark.anyio
@pytest.mark.parametrize("seq", ["set back", "set far ahead"])
async def test_an_edited_run_id_counter_resurrects_nothing(
    store: str, tmp_path: Path, seq: str
) -> None:
    alarm = tmp_path / "alarm"
    await Keeper(store=store, echo=False).run()
    await Keeper(store=store, echo=False).run()
    Flow("Keeper", store)["2"].add_tag("scratch")
    asyncflow.gc(store, tag="scratch")  # run 2 is deleted; gc notes it
    assert query(store, "SELECT key FROM store_info WHERE key = ?", (f"{DELETED_KEY}2",))
    if seq == "set back":  # id 2 is given out again
        execute(store, "UPDATE sqlite_sequence SET seq = 1 WHERE name = 'runs'")
        victim_id = 2
    else:
        execute(store, "UPDATE sqlite_sequence SET seq = 5000 WHERE name = 'runs'")
        victim_id = 5001
        execute(
            store,
            "INSERT INTO store_info VALUES (?, ?)",
            (f"{DELETED_KEY}{victim_id}", '{"flow": "Keeper", "deleted_at": 0}'),
        )
    assert next_id(store) == victim_id
    execute(store, "INSERT INTO run_tags VALUES (?, 'scratch')", (victim_id,))
    execute(store, "UPDATE runs SET origin_run_id = ? WHERE id = 1", (victim_id,))
    plant_for(store, victim_id, alarm)

    run = await Keeper(store=store, echo=False).run()
    assert int(run.id) == victim_id
    mine = Flow("Keeper", store)[str(victim_id)]
    assert mine.tags == frozenset() and set(mine.parameters) == set()
    mine.trust()
    read_everything(mine)
    note = f"{DELETED_KEY}{victim_id}"
    assert query(store, "SELECT key FROM store_info WHERE key = ?", (note,)) == []
    # another run's claim to be resumed from the new id is dropped
    assert query(store, "SELECT origin_run_id FROM runs WHERE id = 1") == [(None,)]
    assert rows_naming(store, victim_id) == rows_naming(store, 1)
    assert not alarm.exists()


# --- 5. a run-id counter at its end is not a full disk --------------------------------------


@pytest.mark.anyio
async def test_run_ids_used_up_are_reported_as_such_not_as_a_full_disk(
    store: str, tmp_path: Path
) -> None:
    await Keeper(store=store, echo=False).run()
    execute(store, "UPDATE sqlite_sequence SET seq = ? WHERE name = 'runs'", (MAX_RUN_ID - 1,))
    last = await Keeper(store=store, echo=False).run()  # the last id there is still works
    assert int(last.id) == MAX_RUN_ID
    with pytest.raises(StoreError) as info:
        await Keeper(store=store, echo=False).run()
    text = str(info.value)
    assert "run ids are used up" in text and store in text and str(MAX_RUN_ID) in text
    assert "disk" not in text
    # import into that store says the same, and adds nothing
    write_run(str(tmp_path / "src.db"), "Theirs", [T("end", artifacts={"n": 1})])
    archive = str(tmp_path / "theirs.afa")
    Flow("Theirs", str(tmp_path / "src.db"))["1"].export(archive)
    with pytest.raises(StoreError, match="run ids are used up"):
        asyncflow.import_archive(archive, store=store)
    assert query(store, "SELECT count(*) FROM runs") == [(2,)]
    # the counter set back below the largest id: that id still rules
    execute(store, "UPDATE sqlite_sequence SET seq = 5 WHERE name = 'runs'")
    with pytest.raises(StoreError, match="run ids are used up"):
        await Keeper(store=store, echo=False).run()


# --- 4. a signing key others may read is refused -------------------------------------------


@pytest.fixture
def own_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    key = tmp_path / "keys" / "key"
    monkeypatch.setenv("ASYNCFLOW_KEY_FILE", str(key))
    return key


@pytest.mark.anyio
@pytest.mark.parametrize(
    "mode", [0o644, 0o640, 0o604, 0o620, 0o602], ids=["644", "640", "604", "620", "602"]
)
async def test_a_signing_key_others_may_read_or_write_is_refused(
    store: str, tmp_path: Path, own_key: Path, mode: int
) -> None:
    alarm = tmp_path / "alarm"
    await Keeper(store=store, echo=False).run()  # the key is made, 0600
    assert own_key.stat().st_mode & 0o777 == 0o600
    own_key.chmod(mode)  # restored from a backup, copied under umask 022, ...
    # Another user reads the key and signs a pickle of theirs with it, in a store they hand over.
    stolen = TrustKey(str(tmp_path / "stolen"))
    shutil.copy(own_key, stolen.path)
    os.chmod(stolen.path, 0o600)
    gift = str(tmp_path / "gift.db")
    write_run(gift, "Gift", [T("end", artifacts={"payload": Alarm(str(alarm))})], key=stolen)

    with pytest.raises(StoreError) as info:
        _ = Flow("Gift", gift)["1"].end_task.data.payload
    text = str(info.value)
    assert f"the signing key file {str(own_key)!r} is not private" in text
    assert f"its mode is {mode:04o}" in text and f"chmod 600 {own_key}" in text
    Store.close_all()  # as a new process: the key is read again
    with pytest.raises(StoreError, match="is not private"):
        await Keeper(store=store, echo=False).run()  # nor does a run sign with it
    assert not alarm.exists()
    own_key.chmod(0o600)  # the fix the message gives
    assert (await Keeper(store=store, echo=False).run()).data.seen[0] == 7


@pytest.mark.anyio
@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs chown")
async def test_a_signing_key_of_another_user_is_refused(
    store: str, tmp_path: Path, own_key: Path
) -> None:
    await Keeper(store=store, echo=False).run()
    os.chown(own_key, 4242, -1)  # mode 0600, but another user's file
    Store.close_all()  # as a new process: the key is read again
    with pytest.raises(StoreError) as info:
        await Keeper(store=store, echo=False).run()
    assert "belongs to uid 4242, not to you" in str(info.value)


def test_a_key_asyncflow_creates_is_private_whatever_the_umask(own_key: Path) -> None:
    old = os.umask(0)
    try:
        assert len(TrustKey().sign(b"x" * 32)) == 32
    finally:
        os.umask(old)
    assert own_key.stat().st_mode & 0o777 == 0o600
    assert own_key.stat().st_uid == os.getuid()


# --- 6. gc sweeps rows no run can reach, and the values only they name -----------------------


@pytest.mark.anyio
async def test_gc_deletes_rows_planted_for_ids_no_run_has_and_their_values(
    store: str, tmp_path: Path
) -> None:
    await Keeper(store=store, echo=False).run()
    await Keeper(store=store, echo=False).run()
    far = next_id(store) + 1000
    sha = plant_for(store, far, tmp_path / "alarm")
    execute(store, "INSERT INTO run_tags VALUES (?, 'keep')", (far,))
    assert sum(rows_naming(store, far).values()) == 22

    report = asyncflow.gc(store, keep_last=1)

    assert report.deleted == ("Keeper/1",)
    assert rows_naming(store, far) == dict.fromkeys(run_tables(), 0)
    assert query(store, "SELECT count(*) FROM blobs WHERE sha = ?", (sha,)) == [(0,)]
    assert Flow("Keeper", store=store).latest_run.successful  # the kept run still reads
    assert not (tmp_path / "alarm").exists()
