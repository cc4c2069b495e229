"""Damaged and edited run archives end in a clear error or the right data, never worse.

The harness is ``tests/_fuzzarchive.py`` (its docstring defines the outcomes); the stress run
of 1,000+ cases is ``benchmarks/fuzz_archive.py`` (``benchmarks/stress_fuzz.py`` for
archives and stores). Here: a few hundred cases with a fixed seed (stores included), the
harness's own judgement checked on readings made to fail, and the nastiest mutations one
by one, each with the exact error it must end in.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

import asyncflow
from asyncflow import Flow, StoreError
from asyncflow._store import _queries
from tests import _fuzzarchive as fa
from tests import _fuzzmutate as mut
from tests import _fuzzpool as pool
from tests import _fuzzread as rd
from tests import _fuzzstore as fs
from tests._storefixture import T, write_run
from tests.flows.fuzz import CANARY_FILE, LOUD_FILE

SEED = 20261129
CASES = 300


@pytest.fixture(scope="module")
def fixture(tmp_path_factory: pytest.TempPathFactory) -> fa.Fixture:
    return fa.build(str(tmp_path_factory.mktemp("fuzz")))


@pytest.fixture
def edited(fixture: fa.Fixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A copy of the reference archive in a folder that is also the current directory, where
    an unpickled canary would leave its marker."""
    monkeypatch.chdir(tmp_path)
    path = str(tmp_path / "edited.afa")
    shutil.copyfile(fixture.archive, path)
    return path


def no_marker(folder: Path) -> None:
    assert not (folder / CANARY_FILE).exists(), "the canary was unpickled"
    assert not (folder / LOUD_FILE).exists(), "a pickle was loaded"


@contextlib.contextmanager
def attacker(path: str) -> Iterator[sqlite3.Connection]:
    """Edit the archive, then recompute its digest, as someone covering their tracks would."""
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        yield conn
        mut.reseal(conn)


def blob_of(path: str, name: str, run: int = 1) -> bytes:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        (sha,) = conn.execute(
            "SELECT sha FROM artifacts WHERE name = ? AND run_id = ? LIMIT 1", (name, run)
        ).fetchone()
    return bytes(sha)


# --- the fuzz run -----------------------------------------------------------------------------


def test_random_damage_and_edits_end_in_a_clear_error_or_the_right_data(
    fixture: fa.Fixture,
) -> None:
    summary = pool.run_fuzz(fixture.folder, cases=CASES, seed=SEED, workers=2, fixture=fixture)
    report = summary.render()
    assert summary.cases == CASES
    assert summary.count("OTHER") == 0, report
    # Both kinds of good outcome happen, so a harness that judged everything alike would fail.
    assert summary.count("same") > 0 and summary.count("clear") > 0, report
    assert summary.count("accepted") > 0, report
    assert set(summary.kinds) == set(mut.MUTATIONS), report
    assert summary.errors["UntrustedArtifactError"] > 0, report
    # Workers run with their address space capped (3 GiB); none came near it.
    assert summary.peak_rss_mib < 1024, report


# --- the harness's judgement ------------------------------------------------------------------


def reading(path: str, **out: tuple[object, ...]) -> rd.Reading:
    return rd.Reading(path, out=dict(out))


def test_the_judge_tells_every_outcome_apart() -> None:
    value = ("value", rd.norm(3))
    meta = {"x:meta": ("value", rd.norm(("msgpack", 1, "ab")))}
    ref = reading("/a.afa", x=value, **meta)
    assert rd.judge(ref, reading("/a.afa", **ref.out)).outcome == "same"
    clear = ("error", "StoreError", True, "the archive '/a.afa' is damaged")
    assert rd.judge(ref, reading("/a.afa", x=clear)).outcome == "clear"
    vague = ("error", "StoreError", False, "something is wrong")
    assert rd.judge(ref, reading("/a.afa", x=vague)).outcome == "OTHER"
    raw = ("raw", "TypeError", "boom", "Traceback ...")
    assert rd.judge(ref, reading("/a.afa", x=raw)).outcome == "OTHER"
    other = ("value", rd.norm(4))
    assert rd.judge(ref, reading("/a.afa", x=other, **meta)).outcome == "OTHER"
    assert rd.judge(ref, reading("/a.afa", x=other, **meta), ("x",)).outcome == "accepted"
    # Nothing read and no error to say why: the data silently went missing.
    assert rd.judge(ref, reading("/a.afa")).outcome == "OTHER"


def test_a_pickled_value_that_loads_is_never_accepted() -> None:
    meta = ("value", rd.norm(("pickle", 10, "ab")))
    untrusted = ("error", "UntrustedArtifactError", True, "not loaded")
    ref = reading("/a.afa", **{"r/1/x": untrusted, "r/1/x:meta": meta})
    loaded = reading("/a.afa", **{"r/1/x": ("value", rd.norm(3)), "r/1/x:meta": meta})
    verdict = rd.judge(ref, loaded, ("r/1/x", "r/1/x:meta"))
    assert verdict.outcome == "OTHER" and "pickled value loaded" in verdict.detail


def test_the_canary_is_live(
    fixture: fa.Fixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Unpickling its stored bytes does create the marker: a canary that never fires proves
    # nothing.
    monkeypatch.chdir(tmp_path)
    with contextlib.closing(sqlite3.connect(fixture.archive)) as conn:
        (data,) = conn.execute(
            "SELECT data FROM blobs WHERE sha = ?", (blob_of(fixture.archive, "canary"),)
        ).fetchone()
    pickle.loads(data)
    assert (tmp_path / CANARY_FILE).exists()


def test_every_mutation_replays_from_its_seed(fixture: fa.Fixture, tmp_path: Path) -> None:
    facts = mut.learn(fixture.archive)
    for kind in sorted(mut.MUTATIONS):
        seed = next(s for _, s in pool.case_seeds(7, 500) if fa.case_kind(s)[0] == kind)
        done = []
        for name in ("one.afa", "two.afa"):
            path = str(tmp_path / name)
            shutil.copyfile(fixture.archive, path)
            _, rng = fa.case_kind(seed)
            done.append((mut.MUTATIONS[kind](path, rng, facts), Path(path).read_bytes()))
        assert done[0][0] == done[1][0], kind
        if not kind.startswith("sql_"):  # SQLite may lay out the same edit differently
            assert done[0][1] == done[1][1], kind


# --- the nastiest mutations, one by one -------------------------------------------------------


def test_a_canary_in_a_run_the_attacker_marked_trusted_is_refused(
    fixture: fa.Fixture, edited: str, tmp_path: Path
) -> None:
    canary = blob_of(edited, "canary")
    with attacker(edited) as conn:
        conn.execute("UPDATE runs SET trusted = 1")
        conn.execute("UPDATE blobs SET mac = randomblob(32)")
        # ... and a msgpack artifact now names the canary too.
        conn.execute("UPDATE artifacts SET sha = ? WHERE name = 'total'", (canary,))
    run = Flow("FuzzFlow", store=edited)["1"]
    for read in (lambda: run["start"].task.data.canary, lambda: run.data.total):
        with pytest.raises(asyncflow.UntrustedArtifactError):
            read()
    # The target holds a run of this user's whose canary is the same blob, signed: the
    # imported run must still refuse it (trust is per run, not per blob).
    target = str(tmp_path / "target.db")
    shutil.copyfile(fixture.targets[0], target)
    [imported, *_] = asyncflow.import_archive(edited, store=target)
    for read in (lambda: imported["start"].task.data.canary, lambda: imported.data.total):
        with pytest.raises(asyncflow.UntrustedArtifactError):
            read()
    no_marker(tmp_path)


def test_bytes_changed_under_their_sha_fail_on_read_and_on_import(
    edited: str, tmp_path: Path
) -> None:
    mapping = blob_of(edited, "mapping")
    with contextlib.closing(sqlite3.connect(edited)) as conn, conn:
        (data,) = conn.execute("SELECT data FROM blobs WHERE sha = ?", (mapping,)).fetchone()
        changed = bytes([data[0] ^ 1]) + bytes(data[1:])
        conn.execute("UPDATE blobs SET data = ? WHERE sha = ?", (changed, mapping))
    task = Flow("FuzzFlow", store=edited)["1"]["start"].task
    assert task.data.small == 42  # the other values still read
    with pytest.raises(StoreError, match="do not match its hash") as info:
        task.data.mapping  # noqa: B018
    assert edited in str(info.value)
    target = str(tmp_path / "target.db")
    write_run(target, "Local", [T("end", artifacts={"x": 1})])
    before = fa.store_state(target)
    with pytest.raises(StoreError, match="does not match its hash") as info:
        asyncflow.import_archive(edited, store=target)
    assert edited in str(info.value)
    assert fa.store_state(target) == before  # all or nothing


@pytest.mark.parametrize("where", ["archive", "store"])
def test_a_size_lie_of_2_60_is_refused_without_allocating_it(
    where: str, edited: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = blob_of(edited, "big")
    asked: list[int] = []
    real = _queries.payload_buffer

    def payload_buffer(size: int) -> object:
        asked.append(size)
        return real(size)

    monkeypatch.setattr(_queries, "payload_buffer", payload_buffer)
    lie = "UPDATE blobs SET size = 1152921504606846976, nchunks = 1099511627776 WHERE sha = ?"
    if where == "archive":
        with attacker(edited) as conn:
            conn.execute(lie, (big,))
        with pytest.raises(StoreError, match="has a bad size") as info:
            Flow("FuzzFlow", store=edited)["1"]["start"].task.data.big  # noqa: B018
        assert edited in str(info.value)
        with pytest.raises(StoreError, match="has a bad size"):
            asyncflow.import_archive(edited, store=str(tmp_path / "target.db"))
    else:
        # A store (no manifest, no check on open): the read itself must refuse.
        store = str(tmp_path / "store.db")
        shutil.copyfile(edited, store)
        with contextlib.closing(sqlite3.connect(store)) as conn, conn:
            conn.execute("DELETE FROM store_info WHERE key = 'archive'")
            conn.execute(lie, (big,))
        with pytest.raises(StoreError, match="incomplete") as info:
            Flow("FuzzFlow", store=store)["1"]["start"].task.data.big  # noqa: B018
        assert store in str(info.value)
    assert all(size < 1 << 30 for size in asked), asked


def test_a_view_that_never_ends_is_refused_before_it_is_read(edited: str) -> None:
    with attacker(edited) as conn:
        conn.execute("DROP TABLE blob_chunks")
        conn.execute(f"CREATE VIEW blob_chunks AS {mut.ENDLESS}")
    with pytest.raises(StoreError, match="not the ones asyncflow writes") as info:
        Flow("FuzzFlow", store=edited)["1"]["start"].task.data.big  # noqa: B018
    assert "'blob_chunks'" in str(info.value)


def test_a_changed_byte_in_the_manifest_is_caught(edited: str) -> None:
    with contextlib.closing(sqlite3.connect(edited)) as conn, conn:
        (text,) = conn.execute("SELECT value FROM store_info WHERE key = 'archive'").fetchone()
        manifest = json.loads(text)
        manifest["exported_by"]["user"] += "x"  # what a flipped bit in the file could do
        conn.execute(
            "UPDATE store_info SET value = ? WHERE key = 'archive'",
            (json.dumps(manifest, sort_keys=True),),
        )
    with pytest.raises(StoreError, match="do not match the digest"):
        asyncflow.read_archive(edited, verify=True)
    with pytest.raises(StoreError, match="do not match the digest"):
        Flow("FuzzFlow", store=edited)


def test_a_record_of_the_wrong_kind_is_refused(edited: str) -> None:
    with attacker(edited) as conn:
        conn.execute("UPDATE attempts SET attempt = 'first'")
    with pytest.raises(StoreError, match=r"attempts holds a value asyncflow never writes"):
        Flow("FuzzFlow", store=edited)


# --- damaged stores (tests/_fuzzstore.py) -----------------------------------------------------

STORE_CASES = 120


def test_random_damage_to_a_store_never_gives_a_raw_error_a_hang_a_pickle_or_a_blowup(
    fixture: fa.Fixture,
) -> None:
    # Each case runs in a worker whose address space is capped (3 GiB): a reader allocating
    # what a damaged file claims dies of MemoryError there, an OTHER. A store has no digest:
    # data may differ without an error ("unchecked", counted), nothing worse may happen.
    summary = pool.run_fuzz(
        fixture.folder, cases=0, store_cases=STORE_CASES, seed=SEED, workers=2, fixture=fixture
    )
    report = summary.render()
    assert summary.cases == STORE_CASES
    assert summary.count("OTHER") == 0, report
    assert summary.count("clear") > 0 and summary.count("same") > 0, report
    assert {k.removeprefix("store:") for k in summary.kinds} == set(fs.STORE_DAMAGE), report
    assert summary.peak_rss_mib < 1024, report
