"""Decoding msgpack never builds more than a budget for runs you do not trust (issue 9).

A perfectly valid msgpack value can build far more Python memory than its bytes: each empty
list is one byte stored and 64 bytes built. Such a value passes every check of an archive.
So a msgpack value read through a run that is not trusted (an archive read in place, an
imported run not trusted since, a store someone else wrote) may build at most
``BUDGET_PER_BYTE`` bytes of containers per stored byte plus ``BUDGET_SLACK``; past that the
read is a ``StoreError`` that says how to read it anyway (trust the run). The runs you trust,
your own first, have no budget: a user always reads their own values.

Every store and archive is a real file; the runs are written with tests/_storefixture.py
(the runtime's layout), archives by the real export. The memory test runs the read in a
subprocess under an address-space cap that the unbudgeted read does not fit in.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import asyncflow._client._trust as trust_module
from asyncflow import Flow, StoreError, export_runs, import_archive
from asyncflow._codecs import encode
from tests._storefixture import T, write_run

ROOT = Path(__file__).resolve().parents[1]
FLOW = "Amplify"


def crafted(kind: str, n: int) -> Any:
    """Values that build far more than their bytes (the attacker's), or legitimately some."""
    if kind == "lists":
        return [[] for _ in range(n)]  # 1 byte each, 64 built
    if kind == "maps":
        return [{} for _ in range(n)]  # 1 byte each, 72 built
    if kind == "frozensets":
        return [frozenset()] * n  # 4 bytes each, 224 built; cheap to make (one object)
    if kind == "pairs":
        return [[i % 100, 2] for i in range(n)]  # 3 bytes each, ~80 built
    if kind == "strings":
        return [f"s{i % 10}" for i in range(n)]  # 3 bytes each, ~59 built
    if kind == "records":
        return [{"x": float(i), "y": i % 7} for i in range(n)]
    raise AssertionError(kind)


def one_value_store(tmp: Path, value: Any, *, trusted: bool, name: str = "s.db") -> str:
    path = str(tmp / name)
    write_run(path, FLOW, [T("start", artifacts={"value": value}), T("end")], trusted=trusted)
    return path


def read_value(path: str, *, trust: bool = False) -> Any:
    with Flow(FLOW, store=path, trust=trust) as flow:
        run = flow.latest_run
        assert run is not None
        return run["start"].task.data.value


@pytest.fixture
def small_slack(monkeypatch: pytest.MonkeyPatch) -> None:
    # The per-byte rule under test, with a 1 MiB slack instead of 64 MiB: the same rule on
    # values small enough for a quick test.
    monkeypatch.setattr(trust_module, "BUDGET_SLACK", 1 << 20, raising=False)


def refused(path: str, **kw: Any) -> StoreError:
    with pytest.raises(StoreError) as info:
        read_value(path, **kw)
    return info.value


@pytest.mark.parametrize("kind", ["lists", "maps", "frozensets"])
def test_crafted_msgpack_of_an_archive_or_untrusted_run_is_refused_past_its_budget(
    tmp_path: Path, small_slack: None, kind: str
) -> None:
    value = crafted(kind, 200_000)
    store = one_value_store(tmp_path, value, trusted=True)
    archive = str(tmp_path / "x.afa")
    with Flow(FLOW, store=store) as flow:
        run = flow.latest_run
        assert run is not None
        export_runs(archive, [run])
    # read in place from the archive
    exc = refused(archive)
    message = str(exc)
    assert "artifact 'value' of task Amplify/1/start/1" in message
    assert "32 per stored byte" in message and "read straight from the run archive" in message
    assert "trust=True" in message and exc.path == archive
    # imported without trust, into another store
    target = str(tmp_path / "t.db")
    import_archive(archive, store=target)
    exc = refused(target)
    assert "is not trusted" in str(exc) and "asyncflow trust Amplify/1" in str(exc)
    # a store someone else wrote (its runs not trusted here)
    theirs = one_value_store(tmp_path, value, trusted=False, name="theirs.db")
    assert "asyncflow trust Amplify/1" in str(refused(theirs))
    # ... and each reads as soon as it is trusted, the way the messages say
    assert read_value(archive, trust=True) == value
    with Flow(FLOW, store=target) as flow:
        run = flow.latest_run
        assert run is not None
        run.trust()
    assert read_value(target) == value
    assert read_value(store) == value  # the writer's own run never had a budget


@pytest.mark.parametrize("kind", ["pairs", "strings", "records"])
def test_legit_large_msgpack_values_load_from_an_archive_under_the_budget(
    tmp_path: Path, small_slack: None, kind: str
) -> None:
    value = crafted(kind, 300_000)
    # the per-byte rule decides: the slack is under 5% of the budget
    assert 32 * encode(value).size > 20 * (1 << 20)
    store = one_value_store(tmp_path, value, trusted=False)
    assert read_value(store) == value
    archive = str(tmp_path / "x.afa")
    with Flow(FLOW, store=store) as flow:
        run = flow.latest_run
        assert run is not None
        export_runs(archive, [run])
    assert read_value(archive) == value


def test_your_own_list_of_a_million_pairs_always_loads(tmp_path: Path, small_slack: None) -> None:
    value = crafted("pairs", 1_000_000)
    assert read_value(one_value_store(tmp_path, value, trusted=True)) == value


@pytest.mark.anyio
async def test_the_awaitable_read_has_the_same_budget(tmp_path: Path, small_slack: None) -> None:
    store = one_value_store(tmp_path, crafted("lists", 200_000), trusted=False)
    with Flow(FLOW, store=store) as flow:
        run = flow.latest_run
        assert run is not None
        with pytest.raises(StoreError, match="32 per stored byte"):
            await run["start"].task["value"].adata()
        with pytest.raises(StoreError, match="32 per stored byte"):
            await run["start"].task.adata("value")


def test_cli_dump_of_a_crafted_value_says_why_without_a_traceback(tmp_path: Path) -> None:
    # The default budget (64 MiB of slack) and a real CLI process.
    store = one_value_store(tmp_path, crafted("frozensets", 700_000), trusted=False)
    proc = subprocess.run(
        [sys.executable, "-m", "asyncflow", "dump", "Amplify/1/start/1/value", "--store", store],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "32 per stored byte" in proc.stderr and "Traceback" not in proc.stderr


_READER = textwrap.dedent(
    """
    import resource, sys
    from asyncflow import Flow, StoreError
    path, trust, cap = sys.argv[1], sys.argv[2] == "trust", int(sys.argv[3])
    with Flow("Amplify", store=path, trust=trust) as flow:
        task = flow.latest_run["start"].task
        art = task["value"]
        with open("/proc/self/status") as status:
            vm = next(int(l.split()[1]) * 1024 for l in status if l.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (vm + cap, vm + cap))
        try:
            value = art.data
        except StoreError as exc:
            print("StoreError", "MemoryError" in str(exc), str(exc)[:300])
        except MemoryError:
            print("MemoryError")
        else:
            print("loaded", len(value))
    """
)


def read_capped(path: str, trust: bool, cap: int) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", _READER, path, "trust" if trust else "-", str(cap)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip()


def test_reading_a_crafted_archive_never_allocates_the_amplified_memory(tmp_path: Path) -> None:
    # The default budget: 2,000,000 empty frozensets are 8 MB stored and ~450 MB built; the
    # budget (32 x 8 MB + 64 MiB of containers) stops the decode at ~320 MB. Under a cap of
    # 400 MB more than the reader already maps, the untrusted read is refused with the
    # budget's StoreError, while the same read with the budget lifted (trust=True) runs out.
    n = 2_000_000
    store = one_value_store(tmp_path, crafted("frozensets", n), trusted=True)
    archive = str(tmp_path / "x.afa")
    with Flow(FLOW, store=store) as flow:
        run = flow.latest_run
        assert run is not None
        export_runs(archive, [run])
    cap = 400 << 20
    out = read_capped(archive, False, cap)
    assert out.startswith("StoreError False") and "32 per stored byte" in out, out
    unbudgeted = read_capped(archive, True, cap)
    assert unbudgeted == "MemoryError" or unbudgeted.startswith("StoreError True"), unbudgeted


def test_a_run_marked_untrusted_in_its_store_gets_the_budget(
    tmp_path: Path, small_slack: None
) -> None:
    # The owner's run becomes untrusted (as if copied from elsewhere): the budget applies.
    value = crafted("lists", 200_000)
    store = one_value_store(tmp_path, value, trusted=True)
    with contextlib.closing(sqlite3.connect(store)) as conn, conn:
        conn.execute("UPDATE runs SET trusted = 0")
    assert "32 per stored byte" in str(refused(store))
