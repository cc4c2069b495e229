"""A store someone else prepared, or edits behind our back, never makes us run their code.

Each test plays the attacker for real: it edits the store file with ``sqlite3`` (bytes swapped
under a valid signature, a trigger, a view, a row planted under the hash of a value the victim
is about to store), and the victim then runs or reads its own flows. ``Alarm`` is a crafted
pickle that creates a file when unpickled: the file must never appear, and the error must be
the documented one. (CONTRACT, "Safety promises, made exact": a pickle is checked against its
hash at the very read that unpickles it; a store from elsewhere is data, never code.)
"""

from __future__ import annotations

import contextlib
import pickle
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio.to_thread
import msgpack
import pytest

import asyncflow
from asyncflow import (
    ArtifactLoadError,
    Flow,
    StepFailed,
    StoreError,
    StoreFormatError,
    UntrustedArtifactError,
)
from asyncflow._codecs import encode
from asyncflow._store._blobs import CHUNK_SIZE, stored_sha
from asyncflow._store._db import open_writer
from asyncflow._store._schema import APPLICATION_ID
from asyncflow._store._signing import sign_blobs
from asyncflow._store._store import Store
from asyncflow._store._trust import TrustKey
from tests._storefixture import T, sha_of, write_run
from tests.flows.attacker_flows import (
    BIG,
    AsyncKeeper,
    BigBody,
    Bulky,
    Keeper,
    Missing,
    forget_thing,
)
from tests.flows.trust_flows import Alarm, Point, TrustFlow

# --- the attacker's tools ---------------------------------------------------------------------


def alarm_pickle(marker: Path, size: int = 0) -> bytes:
    """A pickle that creates ``marker`` when loaded, padded to ``size`` bytes (pickle ignores
    what follows its STOP opcode)."""
    data = pickle.dumps(Alarm(str(marker)), protocol=5)
    return data + b"\0" * max(0, size - len(data))


def execute(path: str, sql: str, params: tuple[Any, ...] = ()) -> None:
    """One statement on ``path`` with plain sqlite3, as anyone with the file could."""
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(sql, params)


def query(path: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql, params).fetchall()


def swap_pickle(path: str, sha: bytes, marker: Path) -> None:
    """Replace the stored bytes of blob ``sha`` by the alarm, keeping its sha, size and mac."""
    ((nchunks,),) = query(path, "SELECT nchunks FROM blobs WHERE sha = ?", (sha,))
    if nchunks == 0:
        execute(path, "UPDATE blobs SET data = ? WHERE sha = ?", (alarm_pickle(marker), sha))
        execute(path, "UPDATE blobs SET size = length(data) WHERE sha = ?", (sha,))
    else:
        evil = alarm_pickle(marker, CHUNK_SIZE)
        execute(path, "UPDATE blob_chunks SET data = ? WHERE sha = ? AND idx = 0", (evil, sha))


def intact(path: str, sha: bytes) -> bool:
    """Whether the row of blob ``sha`` holds bytes that hash to ``sha``."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        row = conn.execute(
            "SELECT encoding, meta, size, nchunks FROM blobs WHERE sha = ?", (sha,)
        ).fetchone()
        return row is not None and stored_sha(conn, sha, *row) == sha


def run_count(path: str) -> int:
    return int(query(path, "SELECT count(*) FROM runs")[0][0])


@contextlib.contextmanager
def held(path: str, cache_bytes: int = 0) -> Iterator[Store]:
    """Keep one Store of ``path`` open in this process (as a long-lived app does), without a
    blob cache unless asked: every run meanwhile shares it, and every read goes to the file
    (as reads of values over a quarter of the cache always do)."""
    store = Store.acquire(path, cache_bytes)
    try:
        yield store
    finally:
        store.release()


# --- 1. every read that unpickles checks the bytes it unpickles -------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("flow", "name"),
    [(Keeper, "point"), (Keeper, "bulky"), (AsyncKeeper, "point")],
    ids=["inline", "chunked", "coroutine step"],
)
async def test_a_pickle_edited_after_a_good_read_is_hashed_again_at_the_next_read(
    store: str, tmp_path: Path, flow: type[Keeper], name: str
) -> None:
    alarm = tmp_path / "alarm"
    with held(store):
        await flow(store=store, echo=False).run()
        # Run 2 reads start's committed value from the file, and it is intact.
        assert (await flow(store=store, echo=False).resume(1, step="end")).successful
        sha = sha_of(Point(7) if name == "point" else Bulky(5000))
        swap_pickle(store, sha, alarm)
        with pytest.raises(StepFailed) as info:
            await flow(store=store, echo=False).resume(1, step="end")
    cause = info.value.__cause__
    assert isinstance(cause, UntrustedArtifactError)
    assert "do not match their hash" in str(cause) and cause.name == name
    assert not alarm.exists()


@pytest.mark.anyio
async def test_a_pickle_refused_once_is_refused_again_in_the_same_process(
    store: str, tmp_path: Path
) -> None:
    alarm = tmp_path / "alarm"
    with held(store):
        await Keeper(store=store, echo=False).run()
        swap_pickle(store, sha_of(Point(7)), alarm)
        for _ in range(2):
            with pytest.raises(StepFailed) as info:
                await Keeper(store=store, echo=False).resume(1, step="end")
            assert isinstance(info.value.__cause__, UntrustedArtifactError)
    assert not alarm.exists()


def test_a_store_that_claims_to_be_an_archive_still_has_its_pickles_hashed(
    store: str, tmp_path: Path
) -> None:
    alarm = tmp_path / "alarm"
    write_run(store, "Theirs", [T("end", artifacts={"point": Point(3)})])
    task = Flow("Theirs", store, trust=True)["1"].end_task  # the client's file is open
    # The store's word about itself is data too: it may not stand in for the hash check.
    execute(store, "INSERT INTO store_info (key, value) VALUES ('archive', '{}')")
    swap_pickle(store, sha_of(Point(3)), alarm)
    with pytest.raises(UntrustedArtifactError, match="do not match their hash"):
        task.data.point  # noqa: B018
    assert not alarm.exists()


# --- 2a. SQL objects that asyncflow did not create are refused ------------------------------

PLANTED = {
    "trigger": (
        "CREATE TRIGGER evil AFTER INSERT ON blobs WHEN new.encoding = 'pickle' "
        "BEGIN UPDATE blobs SET data = {alarm} WHERE sha = new.sha; END"
    ),
    "view": "CREATE VIEW evil AS SELECT * FROM runs",
    "table": "CREATE TABLE evil (x)",
    "index": "CREATE INDEX evil ON blobs (encoding)",
    "changed table": "DROP TABLE run_tags; CREATE TABLE run_tags (run_id, tag, "
    "CHECK (tag != 'x'), PRIMARY KEY (run_id, tag)) WITHOUT ROWID",
}


def plant(path: str, sql: str, alarm: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.executescript(sql.format(alarm="x'" + alarm_pickle(alarm).hex() + "'"))


@pytest.mark.anyio
@pytest.mark.parametrize("kind", list(PLANTED))
async def test_a_store_with_sql_objects_asyncflow_did_not_create_is_refused_at_every_door(
    store: str, tmp_path: Path, kind: str
) -> None:
    alarm = tmp_path / "alarm"
    await Keeper(store=store, echo=False).run()
    plant(store, PLANTED[kind], alarm)
    before = Path(store).read_bytes()
    doors = [
        lambda: anyio.run(lambda: Keeper(store=store, echo=False).run()),
        lambda: anyio.run(lambda: Keeper(store=store, echo=False).resume(1, step="end")),
        lambda: Flow("Keeper", store, trust=True).latest_run,
        lambda: asyncflow.stats(store),
        lambda: asyncflow.gc(store, keep_last=1),
    ]
    for door in doors:
        with pytest.raises(StoreFormatError) as info:
            await anyio.to_thread.run_sync(door)
        text = str(info.value)
        assert "does not hold the schema asyncflow writes" in text and store in text
        assert "'evil'" in text or "'run_tags'" in text
    assert run_count(store) == 1 and not alarm.exists()
    assert Path(store).read_bytes() == before


@pytest.mark.anyio
async def test_a_new_looking_file_with_our_id_and_sql_objects_is_refused(
    store: str, tmp_path: Path
) -> None:
    with contextlib.closing(sqlite3.connect(store)) as conn, conn:
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")  # ours, at schema version 0
        conn.execute("CREATE VIEW evil AS SELECT 1")
    with pytest.raises(StoreFormatError, match="unknown view 'evil'"):
        await Keeper(store=store, echo=False).run()
    assert query(store, "SELECT name FROM sqlite_master") == [("evil",)]


@pytest.mark.anyio
async def test_a_file_of_another_program_with_only_a_view_is_left_untouched(
    store: str, tmp_path: Path
) -> None:
    execute(store, "CREATE VIEW evil AS SELECT 1")  # no table, no application id
    before = Path(store).read_bytes()
    with pytest.raises(StoreFormatError, match="of another program"):
        await Keeper(store=store, echo=False).run()
    assert Path(store).read_bytes() == before


def test_an_archive_with_a_trigger_is_refused_before_anything_is_read(
    store: str, tmp_path: Path
) -> None:
    write_run(store, "Theirs", [T("end", artifacts={"point": Point(3)})])
    archive = str(tmp_path / "theirs.afa")
    Flow("Theirs", store)["1"].export(archive)
    trigger = "CREATE TRIGGER evil AFTER INSERT ON runs BEGIN DELETE FROM blobs; END"
    plant(archive, trigger, tmp_path)
    with pytest.raises(StoreError, match="unknown trigger 'evil'"):
        Flow("Theirs", archive, trust=True)
    with pytest.raises(StoreError, match="unknown trigger 'evil'"):
        asyncflow.import_archive(archive, store=str(tmp_path / "other.db"), trust=True)


def test_statistics_from_analyze_do_not_make_a_store_foreign(store: str) -> None:
    write_run(store, "Theirs", [T("end", artifacts={"point": Point(3)})])
    execute(store, "ANALYZE")
    assert Flow("Theirs", store)["1"].data.point == Point(3)


# --- 2b. a row planted under the hash of a future value is never adopted ---------------------


def plant_row(path: str, value: Any, data: bytes) -> bytes:
    """Put a blob row under the content address of ``value`` that holds ``data`` instead."""
    enc = encode(value)
    if enc.size <= CHUNK_SIZE:
        execute(
            path,
            "INSERT INTO blobs (sha, encoding, meta, size, data, nchunks) "
            "VALUES (?, ?, ?, ?, ?, 0)",
            (enc.sha, enc.encoding, enc.meta, len(data), data),
        )
        return enc.sha
    nchunks = (enc.size + CHUNK_SIZE - 1) // CHUNK_SIZE
    padded = data + b"\0" * (enc.size - len(data))
    for i in range(nchunks):
        execute(
            path,
            "INSERT INTO blob_chunks (sha, idx, data) VALUES (?, ?, ?)",
            (enc.sha, i, padded[i * CHUNK_SIZE : (i + 1) * CHUNK_SIZE]),
        )
    execute(
        path,
        "INSERT INTO blobs (sha, encoding, meta, size, data, nchunks) VALUES (?, ?, ?, ?, NULL, ?)",
        (enc.sha, enc.encoding, enc.meta, enc.size, nchunks),
    )
    return enc.sha


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["point", "numbers", "bulky"])
async def test_a_blob_row_planted_under_the_hash_of_a_future_value_is_replaced(
    store: str, tmp_path: Path, name: str
) -> None:
    alarm = tmp_path / "alarm"
    value = {"point": Point(7), "numbers": [1, 2, 3], "bulky": Bulky(5000)}[name]
    open_writer(store).close()  # the attacker hands over a fresh, empty store ...
    evil = msgpack.packb([6, 6, 6]) if name == "numbers" else alarm_pickle(alarm)
    sha = plant_row(store, value, evil)  # ... with one row in it
    run = await Keeper(store=store, echo=False).run()
    assert run.data.seen == (7, [1, 2, 3], 5000 * 256)
    assert intact(store, sha)
    assert getattr(Flow("Keeper", store)["1"]["start"].task.data, name) == value
    if name != "numbers":
        ((mac,),) = query(store, "SELECT mac FROM blobs WHERE sha = ?", (sha,))
        assert mac == TrustKey().sign(sha)
    assert not alarm.exists()


def test_signing_a_value_never_signs_a_planted_row(store: str, tmp_path: Path) -> None:
    alarm = tmp_path / "alarm"
    open_writer(store).close()
    sha = plant_row(store, Point(7), alarm_pickle(alarm))
    conn = open_writer(store)
    try:
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            sign_blobs(conn, [encode(Point(7))], TrustKey())
    finally:
        conn.close()
    assert intact(store, sha)
    assert query(store, "SELECT mac FROM blobs WHERE sha = ?", (sha,)) == [(TrustKey().sign(sha),)]


@pytest.mark.anyio
async def test_a_parameter_row_planted_in_advance_is_replaced(store: str, tmp_path: Path) -> None:
    alarm = tmp_path / "alarm"
    open_writer(store).close()
    sha = plant_row(store, Point(1), alarm_pickle(alarm))  # TrustFlow's default origin
    run = await TrustFlow(store=store, echo=False).run()
    assert intact(store, sha)
    assert Flow("TrustFlow", store)[str(run.id)].parameters["origin"] == Point(1)
    assert not alarm.exists()


# --- guards: a committed chunked array is each task's own ------------------------------------


@pytest.mark.anyio
async def test_tasks_reading_a_committed_chunked_array_each_get_their_own_copy(
    store: str,
) -> None:
    await BigBody(store=store, echo=False).run()
    # Resumed from body: start is a clone, so its array is read from the file (committed),
    # one task after another, through the blob cache.
    run = await BigBody(store=store, echo=False, max_workers=1).resume(1, step="body")
    assert run["join"].task.data.seen_all == [[0], [1], [2], [3]]
    start = run["start"].task.data.big
    assert start.shape == (BIG,) and not start.any()


# --- bad input: code that cannot be imported --------------------------------------------------


@pytest.mark.anyio
async def test_a_pickle_whose_module_is_gone_names_the_module(store: str, tmp_path: Path) -> None:
    folder = tmp_path / "code"
    folder.mkdir()
    try:
        with pytest.raises(StepFailed) as info:
            await Missing(store=store, echo=False).run(folder=str(folder))
        cause = info.value.__cause__
        assert isinstance(cause, ArtifactLoadError)
        assert (cause.name, cause.module) == ("thing", "af_vanished_mod")
        assert "in step 'end' of run Missing/1" in str(cause)
        assert "must be importable" in str(cause)
        task = Flow("Missing", store)["1"]["start"].task
        with pytest.raises(ArtifactLoadError) as client:
            task.data.thing  # noqa: B018
        assert client.value.pathspec == task.pathspec and "'af_vanished_mod'" in str(client.value)
        assert pickle.loads(pickle.dumps(client.value)).args == client.value.args
    finally:
        forget_thing(str(folder))
