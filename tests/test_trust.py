"""Safe loading: a pickled value loads only from a trusted run, signed by this user, intact.

Runs written here are trusted and their pickles signed with this user's key (the test
session's own key, see conftest). A run from elsewhere (marked untrusted, signed with another
key, or with bytes edited under a valid signature) loads its msgpack and numpy values but
refuses its pickles with UntrustedArtifactError, through every door: the sync and async
client, the command line and a resume. ``Alarm`` (tests/flows/trust_flows.py) is a crafted
pickle that creates a file when unpickled: it must never go off until its run is trusted.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import asyncflow
from asyncflow import Flow, StepFailed, StoreError, UntrustedArtifactError
from asyncflow._cli import main as asyncflow_cli
from asyncflow._store._trust import TrustKey, default_key_path
from tests._storefixture import T, execute, sha_of, write_run
from tests.flows.trust_flows import Alarm, Point, Resigned, TrustFlow

ROOT = Path(__file__).resolve().parents[1]


# --- helpers ---------------------------------------------------------------------------------


def query(path: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql, params).fetchall()


def macs(path: str) -> dict[bytes, bytes | None]:
    """Every pickle blob's mac, by sha."""
    rows = query(path, "SELECT sha, mac FROM blobs WHERE encoding = 'pickle'")
    return {bytes(sha): None if mac is None else bytes(mac) for sha, mac in rows}


def untrust(path: str, run_id: int, *, unsign: bool = True) -> None:
    """Make a run look like one imported from elsewhere: untrusted, its pickles unsigned."""
    execute(path, "UPDATE runs SET trusted = 0 WHERE id = ?", (run_id,))
    if unsign:
        execute(path, "UPDATE blobs SET mac = NULL")


def swap_bytes(path: str, sha: bytes, payload: bytes) -> None:
    """Replace a blob's stored bytes, keeping its sha and its signature (an edit in place)."""
    execute(path, "UPDATE blobs SET data = ? WHERE sha = ?", (payload, sha))


def pickled(value: Any) -> bytes:
    return pickle.dumps(value, protocol=5)


def cli(*argv: str) -> int:
    return asyncflow_cli(list(argv))


ARTIFACTS = {"point": Point(3), "numbers": [1, 2], "array": np.arange(4)}
PARAMS = {"origin": Point(2), "alpha": 0.5}


def theirs(path: str, **options: Any) -> None:
    """Write run Theirs/1: pickled, msgpack and numpy artifacts and parameters."""
    write_run(path, "Theirs", [T("start"), T("end", artifacts=ARTIFACTS)], params=PARAMS, **options)


# --- writing: what a run signs ---------------------------------------------------------------


@pytest.mark.anyio
async def test_a_run_signs_its_pickles_and_only_them(store: str) -> None:
    run = await TrustFlow(store=store, echo=False).run()
    assert run.trusted
    assert query(store, "SELECT trusted FROM runs") == [(1,)]
    key = TrustKey()
    signed = macs(store)
    assert sha_of(Point(1)) in signed  # the parameter, written with the run's record
    assert sha_of(Point(10)) in signed  # a foreach task's artifact
    assert all(mac == key.sign(sha) for sha, mac in signed.items())
    plain = query(store, "SELECT mac FROM blobs WHERE encoding != 'pickle'")
    assert len(plain) > 3 and set(plain) == {(None,)}  # msgpack and numpy: never signed
    again = Flow("TrustFlow", store).latest_run
    assert again is not None and again.trusted
    assert again.data.total == 31
    assert again.parameters["origin"] == Point(1)


@pytest.mark.anyio
async def test_writing_bytes_an_import_brought_unsigned_signs_them(store: str) -> None:
    write_run(store, "Other", [T("end", artifacts={"p": Point(1)})], trusted=False)
    assert macs(store)[sha_of(Point(1))] is None
    await TrustFlow(store=store, echo=False).run()  # its parameter origin is Point(1) too
    assert macs(store)[sha_of(Point(1))] == TrustKey().sign(sha_of(Point(1)))
    # The other run stays untrusted as a whole, though its bytes are now signed.
    other = Flow("Other", store).latest_run
    assert other is not None and not other.trusted
    with pytest.raises(UntrustedArtifactError, match="not marked trusted"):
        other.data.p  # noqa: B018


# --- reading: the client ---------------------------------------------------------------------


def test_a_trusted_runs_pickles_load(store: str) -> None:
    theirs(store)
    run = Flow("Theirs", store)["1"]
    assert run.trusted
    assert run.data.point == Point(3)
    assert run.parameters == PARAMS


def test_an_untrusted_run_loads_plain_values_and_refuses_pickles(store: str) -> None:
    theirs(store, trusted=False)
    run = Flow("Theirs", store)["1"]
    assert not run.trusted
    task = run.end_task
    assert task.data.numbers == [1, 2]
    np.testing.assert_array_equal(task.data.array, np.arange(4))
    with pytest.raises(UntrustedArtifactError) as info:
        task.data.point  # noqa: B018
    err = info.value
    assert (err.name, err.pathspec) == ("point", task.pathspec)
    text = str(err)
    assert f"artifact 'point' of task {task.pathspec}" in text and "pickle" in text
    assert "not marked trusted" in text and "`asyncflow trust Theirs/1 --store " in text
    with pytest.raises(UntrustedArtifactError):
        task["point"].data  # noqa: B018
    with pytest.raises(UntrustedArtifactError) as param:
        run.parameters  # noqa: B018
    assert (param.value.name, param.value.pathspec) == ("origin", "Theirs/1")
    assert "parameter 'origin' of run Theirs/1" in str(param.value)
    assert pickle.loads(pickle.dumps(err)).args == err.args


@pytest.mark.anyio
async def test_an_untrusted_run_refuses_pickles_through_the_awaitable_forms(store: str) -> None:
    theirs(store, trusted=False)
    async with Flow.aopen("Theirs", store) as flow:
        run = await flow.aget(1)
        task = await run.aend_task()
        assert await task.adata("numbers") == [1, 2]
        with pytest.raises(UntrustedArtifactError, match="'point'"):
            await task.adata("point")
        with pytest.raises(UntrustedArtifactError, match="'point'"):
            await (await task.aartifact("point")).adata()
        with pytest.raises(UntrustedArtifactError, match="'point'"):
            await run.adata("point")
        with pytest.raises(UntrustedArtifactError, match="'origin'"):
            await run.aparameters()


def test_a_signature_made_with_another_key_is_refused(store: str, tmp_path: Path) -> None:
    other = TrustKey(str(tmp_path / "someone" / "key"))
    theirs(store, key=other)  # a trusted run, as another user's store holds it
    run = Flow("Theirs", store)["1"]
    assert run.trusted
    with pytest.raises(UntrustedArtifactError) as info:
        run.data.point  # noqa: B018
    assert "signature is missing or was not made with your key" in str(info.value)
    assert TrustKey().path in str(info.value)
    assert run.data.numbers == [1, 2]


def test_a_run_written_by_another_user_is_refused_until_trusted(store: str, tmp_path: Path) -> None:
    code = (
        "import asyncio\nfrom tests.flows.trust_flows import TrustFlow\n"
        f"asyncio.run(TrustFlow(store={store!r}, echo=False).run())\n"
    )
    env = {**os.environ, "ASYNCFLOW_KEY_FILE": str(tmp_path / "other" / "key")}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=120)
    run = Flow("TrustFlow", store)["1"]
    assert run.trusted  # it ran into this store, but another key signed its pickles
    with pytest.raises(UntrustedArtifactError, match="signature"):
        run.parameters  # noqa: B018
    assert run.data.total == 31  # an int: msgpack
    run.trust()
    assert run["body"].task.data.piece == Point(10)


def test_bytes_edited_under_a_valid_signature_are_refused(store: str, tmp_path: Path) -> None:
    alarm = tmp_path / "alarm"
    theirs(store)
    swap_bytes(store, sha_of(Point(3)), pickled(Alarm(str(alarm))))
    for trust in (False, True):
        task = Flow("Theirs", store, trust=trust)["1"].end_task
        with pytest.raises(UntrustedArtifactError) as info:
            task.data.point  # noqa: B018
        assert "do not match their hash" in str(info.value)
        assert "Restore the store file from a copy" in str(info.value)
    with pytest.raises(StoreError, match="do not match their hash"):
        Flow("Theirs", store)["1"].trust()
    assert not alarm.exists()


def test_trusting_a_run_makes_its_pickles_load(store: str) -> None:
    theirs(store, trusted=False)
    run = Flow("Theirs", store)["1"]
    task = run.end_task  # read before the trust: still sees it
    run.trust()
    assert run.trusted
    assert query(store, "SELECT trusted FROM runs") == [(1,)]
    assert task.data.point == Point(3)
    assert run.parameters == PARAMS
    key = TrustKey()
    assert all(mac == key.sign(sha) for sha, mac in macs(store).items())
    again = Flow("Theirs", store)["1"]
    assert again.trusted and again.data.point == Point(3)


@pytest.mark.anyio
async def test_atrust_is_the_awaitable_twin(store: str) -> None:
    theirs(store, trusted=False)
    run = await (await Flow.aopen("Theirs", store)).aget(1)
    await run.atrust()
    assert run.trusted
    assert await run.adata("point") == Point(3)
    assert (await run.aparameters())["origin"] == Point(2)


def test_trusting_a_run_with_a_damaged_value_changes_nothing(store: str) -> None:
    arts = {"good": Point(3), "bad": Point(4)}
    write_run(store, "Theirs", [T("end", artifacts=arts)], trusted=False)
    swap_bytes(store, sha_of(Point(4)), pickled(Point(40)))
    run = Flow("Theirs", store)["1"]
    with pytest.raises(StoreError) as info:
        run.trust()
    text = str(info.value)
    assert "'bad'" in text and "Theirs/1/end/1" in text and sha_of(Point(4)).hex()[:16] in text
    assert "nothing was trusted" in text
    assert not run.trusted
    assert query(store, "SELECT trusted FROM runs") == [(0,)]
    assert set(macs(store).values()) == {None}  # not even the good value was signed
    with pytest.raises(UntrustedArtifactError):
        run.data.good  # noqa: B018


def test_an_archive_is_untrusted_until_imported_with_trust(store: str, tmp_path: Path) -> None:
    theirs(store)  # trusted where it was written
    archive = str(tmp_path / "theirs.afa")
    Flow("Theirs", store)["1"].export(archive)
    in_place = Flow("Theirs", archive)["1"]
    assert not in_place.trusted
    with pytest.raises(UntrustedArtifactError, match="read straight from the run archive"):
        in_place.data.point  # noqa: B018
    assert Flow("Theirs", archive, trust=True)["1"].data.point == Point(3)
    plain = asyncflow.import_archive(archive, store=str(tmp_path / "plain.db"))
    assert not plain[0].trusted
    with pytest.raises(UntrustedArtifactError, match="imported from an archive"):
        plain[0].data.point  # noqa: B018
    trusted = asyncflow.import_archive(archive, store=str(tmp_path / "trusted.db"), trust=True)
    assert trusted[0].trusted and trusted[0].data.point == Point(3)
    assert trusted[0].parameters == PARAMS


@pytest.mark.anyio
async def test_a_flow_opened_with_trust_loads_any_intact_pickle(store: str) -> None:
    theirs(store, trusted=False)
    flow = Flow("Theirs", store, trust=True)
    run = flow["1"]
    assert run.trusted  # as far as this flow is concerned
    assert run.data.point == Point(3)
    assert run.parameters == PARAMS
    again = pickle.loads(pickle.dumps(run))  # the trust travels with the object
    assert again.end_task.data.point == Point(3)
    assert await (await (await Flow.aopen("Theirs", store, trust=True)).aget(1)).adata(
        "point"
    ) == Point(3)
    async with Flow.aopen("Theirs", store, trust=True) as shared:
        assert (await (await shared.aget(1)).aparameters())["origin"] == Point(2)
    assert not Flow("Theirs", store)["1"].trusted  # nothing was written


def test_a_crafted_pickle_never_runs_until_its_run_is_trusted(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alarm = tmp_path / "alarm"
    evil = Alarm(str(alarm))
    write_run(
        store, "Theirs", [T("end", artifacts={"evil": evil})], params={"p": evil}, trusted=False
    )
    run = Flow("Theirs", store)["1"]
    task = run.end_task
    doors = [
        lambda: task.data.evil,
        lambda: task["evil"].data,
        lambda: run.data.evil,
        lambda: run.parameters,
        lambda: Flow("Theirs", store).latest_run.parameters,  # type: ignore[union-attr]
    ]
    for door in doors:
        with pytest.raises(UntrustedArtifactError):
            door()
    assert cli("dump", "Theirs/1/end/1/evil", "--store", store) == 2
    assert cli("dump", "Theirs/1/evil", "--store", store) == 2
    assert cli("show", "Theirs/1/end/1", "--store", store) == 0  # shows "<cannot load: ...>"
    assert "cannot load" in capsys.readouterr().out
    assert cli("show", "Theirs/1", "--store", store) == 0  # the parameters: the same
    assert "parameters  <cannot load: cannot load parameter 'p'" in capsys.readouterr().out
    assert not alarm.exists()
    run.trust()
    run.end_task.data.evil  # noqa: B018
    assert alarm.exists()  # the check, and nothing else, stood in its way


# --- the runtime: resume ---------------------------------------------------------------------


async def failed_run(store: str, tmp_path: Path) -> None:
    """Run 1 of TrustFlow: its join failed; every pickle before it is stored."""
    fail = tmp_path / "fail"
    fail.touch()
    with pytest.raises(StepFailed):
        await TrustFlow(store=store, echo=False).run(fail=str(fail), alarm=str(tmp_path / "a"))
    fail.unlink()


def run_count(store: str) -> int:
    return int(query(store, "SELECT count(*) FROM runs")[0][0])


@pytest.mark.anyio
async def test_resuming_an_untrusted_run_with_pickles_is_refused_before_anything_runs(
    store: str, tmp_path: Path
) -> None:
    await failed_run(store, tmp_path)
    untrust(store, 1)
    before = query(store, "SELECT (SELECT count(*) FROM tasks), (SELECT count(*) FROM blobs)")
    with pytest.raises(UntrustedArtifactError) as info:
        await TrustFlow(store=store, echo=False).resume()
    text = str(info.value)
    assert text.startswith("cannot resume run TrustFlow/1: it is not marked trusted;")
    assert "`asyncflow trust TrustFlow/1 --store " in text and "nothing was run" in text
    assert info.value.pathspec == "TrustFlow/1"
    assert (
        run_count(store) == 1
        and query(store, "SELECT (SELECT count(*) FROM tasks), (SELECT count(*) FROM blobs)")
        == before
    )
    Flow("TrustFlow", store)["1"].trust()
    run = await TrustFlow(store=store, echo=False).resume()
    assert run.successful and run.data.total == 31
    assert not (tmp_path / "a").exists()  # the Alarm start stored was never read


@pytest.mark.anyio
async def test_an_imported_run_says_so_when_its_resume_is_refused(
    store: str, tmp_path: Path
) -> None:
    await failed_run(store, tmp_path)
    untrust(store, 1)
    execute(store, "UPDATE runs SET imported = '{}' WHERE id = 1")
    with pytest.raises(UntrustedArtifactError, match="imported from an archive"):
        await TrustFlow(store=store, echo=False).resume()


@pytest.mark.anyio
async def test_an_untrusted_run_whose_pickles_carry_your_signature_resumes(
    store: str, tmp_path: Path
) -> None:
    await failed_run(store, tmp_path)
    untrust(store, 1, unsign=False)
    run = await TrustFlow(store=store, echo=False).resume()
    assert run.successful and run.data.total == 31


@pytest.mark.anyio
async def test_resuming_a_run_signed_with_another_key_is_refused_up_front(
    store: str, tmp_path: Path
) -> None:
    await failed_run(store, tmp_path)  # a trusted run, but its pickles signed by someone else
    other = TrustKey(str(tmp_path / "someone" / "key"))
    for sha in macs(store):
        execute(store, "UPDATE blobs SET mac = ? WHERE sha = ?", (other.sign(sha), sha))
    with pytest.raises(UntrustedArtifactError, match="signature is missing") as info:
        await TrustFlow(store=store, echo=False).resume()
    assert str(info.value).startswith("cannot resume run TrustFlow/1: it would reuse")
    assert run_count(store) == 1


@pytest.mark.anyio
async def test_resume_refuses_up_front_a_plain_pickle_signed_by_another_key(
    store: str, tmp_path: Path
) -> None:
    await failed_run(store, tmp_path)
    # Only a body task's artifact, read by the join that runs again: not a foreach list,
    # which the resume decodes (and so checks) anyway.
    other = TrustKey(str(tmp_path / "someone" / "key"))
    sha = sha_of(Point(10))
    execute(store, "UPDATE blobs SET mac = ? WHERE sha = ?", (other.sign(sha), sha))
    with pytest.raises(UntrustedArtifactError, match="signature is missing") as info:
        await TrustFlow(store=store, echo=False).resume()
    assert "it would reuse the pickled artifact 'piece' of task TrustFlow/1/body/" in str(
        info.value
    )
    assert run_count(store) == 1
    assert query(store, "SELECT count(*) FROM tasks WHERE run_id != 1") == [(0,)]


@pytest.mark.anyio
async def test_an_edited_foreach_list_of_a_trusted_run_is_refused_up_front(
    store: str, tmp_path: Path
) -> None:
    await failed_run(store, tmp_path)
    alarm = tmp_path / "alarm"
    swap_bytes(store, sha_of([Point(1), Point(2)]), pickled(Alarm(str(alarm))))
    with pytest.raises(UntrustedArtifactError, match=r"'items'.*do not match their hash"):
        await TrustFlow(store=store, echo=False).resume()
    assert run_count(store) == 1 and not alarm.exists()


@pytest.mark.anyio
async def test_an_edited_pickle_of_a_trusted_run_fails_the_step_that_reads_it(
    store: str, tmp_path: Path
) -> None:
    await failed_run(store, tmp_path)
    alarm = tmp_path / "alarm"
    swap_bytes(store, sha_of(Point(10)), pickled(Alarm(str(alarm))))  # a body's artifact
    with pytest.raises(StepFailed) as info:
        await TrustFlow(store=store, echo=False).resume()
    cause = info.value.__cause__
    assert isinstance(cause, UntrustedArtifactError)
    assert (cause.name, cause.pathspec) == ("piece", "TrustFlow/2/body/2")
    assert "step 'join' of run TrustFlow/2" in str(cause) and "hash" in str(cause)
    assert not alarm.exists()


@pytest.mark.anyio
async def test_a_pickle_unsigned_under_a_running_flow_is_refused(store: str) -> None:
    with pytest.raises(StepFailed) as info:
        await Resigned(store=store, echo=False).run(db=store)
    cause = info.value.__cause__
    assert isinstance(cause, UntrustedArtifactError)
    assert (cause.name, cause.pathspec) == ("point", "Resigned/1/end/3")
    assert "`asyncflow trust Resigned/1 --store " in str(cause)


# --- the key ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_key_that_cannot_be_created_stops_the_run_before_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the key's folder should be")
    key = blocker / "key"
    monkeypatch.setenv("ASYNCFLOW_KEY_FILE", str(key))
    store = tmp_path / "new.db"
    with pytest.raises(StoreError) as info:
        await TrustFlow(store=str(store), echo=False).run()
    assert str(key) in str(info.value) and "ASYNCFLOW_KEY_FILE" in str(info.value)
    assert not store.exists()


def test_a_relative_xdg_data_home_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.delenv("ASYNCFLOW_KEY_FILE")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    default = str(home / ".local" / "share" / "asyncflow" / "key")
    for relative in ("data", "./data", "~data"):
        monkeypatch.setenv("XDG_DATA_HOME", relative)
        assert default_key_path() == default  # the same key from every working directory
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_key_path() == str(tmp_path / "xdg" / "asyncflow" / "key")
    monkeypatch.setenv("XDG_DATA_HOME", "")
    assert default_key_path() == default


# --- the command line ------------------------------------------------------------------------


def test_asyncflow_trust(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    theirs(store, trusted=False)
    write_run(store, "Theirs", [T("end", artifacts=ARTIFACTS)], trusted=False)
    assert cli("trust", "Theirs/1", "Theirs//", "--store", store) == 2  # a typo trusts nothing
    assert "bad pathspec 'Theirs//'" in capsys.readouterr().err
    assert query(store, "SELECT trusted FROM runs ORDER BY id") == [(0,), (0,)]
    assert cli("trust", "Theirs/9", "--store", store) == 2
    assert "run 9" in capsys.readouterr().err
    assert cli("trust", "Theirs/1", "Theirs/2", "--store", store) == 0
    out = capsys.readouterr().out
    assert "Trusted Theirs/1" in out and "Trusted Theirs/2" in out
    assert Flow("Theirs", store)["2"].data.point == Point(3)
