"""What the second red-team round found, each played by the attacker for real.

* A resume of a run you do not trust decoded its msgpack values with no budget, and the new
  run was trusted: 8 MB of crafted msgpack built 1.3 GB, then read freely from the new run.
* The schema check took U+00A0 for whitespace, as Python's ``\\s`` does; SQLite does not, so
  ``INTEGER\\xa0PRIMARY\\xa0KEY`` passed as ours and the runs table lost its key.
* A FIFO at the signing key's path made every run wait forever, deaf to SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from asyncflow import Flow, StepFailed, StoreFormatError, UntrustedArtifactError
from asyncflow._codecs import content_hasher
from asyncflow._store._store import Store
from tests.flows import round2_flows
from tests.flows.round2_flows import Victim

FLOW_FILE = round2_flows.__file__


def execute(path: str, sql: str, params: tuple[object, ...] = ()) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(sql, params)


def plant_amplifier(store: str, n: int) -> None:
    """Make artifact ``x`` of run 1 a msgpack list of ``n`` empty lists (1 byte each, 64
    built), correctly hashed, and mark run 1 as not trusted (a store from someone else)."""
    payload = b"\xdd" + n.to_bytes(4, "big") + b"\x90" * n
    hasher = content_hasher("msgpack", None, len(payload))
    hasher.update(payload)
    sha = hasher.digest()
    execute(
        store,
        "INSERT INTO blobs (sha, encoding, meta, size, data, nchunks, mac) "
        "VALUES (?, 'msgpack', NULL, ?, ?, 0, NULL)",
        (sha, len(payload), payload),
    )
    execute(store, "UPDATE artifacts SET sha = ? WHERE run_id = 1 AND name = 'x'", (sha,))
    execute(store, "UPDATE runs SET trusted = 0 WHERE id = 1")


@pytest.mark.anyio
async def test_resuming_an_untrusted_run_decodes_its_values_under_the_budget(store: str) -> None:
    await Victim(store=store, echo=False).run()
    Store.close_all()
    plant_amplifier(store, 4_000_000)  # 4 MB stored, ~256 MB built: past 32 x 4 MB + 64 MiB

    with pytest.raises(StepFailed) as failed:
        await Victim(store=store, echo=False).resume("1", step="end")
    cause = failed.value.__cause__
    assert isinstance(cause, UntrustedArtifactError), cause
    assert cause.name == "x" and "asyncflow trust Victim/1" in str(cause)
    resumed = Flow("Victim", store=store)["2"]
    assert not resumed.trusted  # it holds values you did not make: no trust laundering


@pytest.mark.anyio
async def test_a_run_resumed_from_an_untrusted_run_is_not_trusted_but_runs(store: str) -> None:
    await Victim(store=store, echo=False).run()
    execute(store, "UPDATE runs SET trusted = 0 WHERE id = 1")
    run = await Victim(store=store, echo=False).resume("1", step="end")
    assert run.successful and run.data.n == 3  # a value within the budget loads
    assert not Flow("Victim", store=store)[run.id].trusted
    again = await Victim(store=store, echo=False).run()  # a fresh run is trusted as ever
    assert Flow("Victim", store=store)[again.id].trusted


@pytest.mark.anyio
async def test_a_table_rewritten_with_non_breaking_spaces_is_not_ours(store: str) -> None:
    await Victim(store=store, echo=False).run()
    Store.close_all()
    with contextlib.closing(sqlite3.connect(store)) as conn, conn:
        (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'runs'").fetchone()
        ours = "INTEGER PRIMARY KEY AUTOINCREMENT"
        assert ours in sql
        conn.execute("PRAGMA writable_schema = ON")
        conn.execute(
            "UPDATE sqlite_master SET sql = ? WHERE name = 'runs'",
            (sql.replace(ours, ours.replace(" ", "\xa0")),),
        )
    before = Path(store).read_bytes()
    with pytest.raises(StoreFormatError):
        await Victim(store=store, echo=False).run()
    with pytest.raises(StoreFormatError):
        Flow("Victim", store=store)
    assert Path(store).read_bytes() == before


def test_a_fifo_at_the_key_path_is_refused_not_waited_on(tmp_path: Path) -> None:
    key = tmp_path / "key"
    os.mkfifo(key)
    env = {**os.environ, "ASYNCFLOW_KEY_FILE": str(key)}
    store = str(tmp_path / "runs.db")
    proc = subprocess.run(
        [sys.executable, FLOW_FILE, "run", "--quiet", "--store", store],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "not a regular file" in proc.stderr and str(key) in proc.stderr
    assert "Traceback" not in proc.stderr
