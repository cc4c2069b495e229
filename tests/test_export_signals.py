"""A stopped export or import leaves nothing half-done (issue 9, red-team findings).

``asyncflow export`` / ``import`` killed by SIGTERM (or Ctrl-C) cancel the copy as ``python
flow.py run`` does: no archive, no temporary file, the target store as it was (none, if the
import would have created it), exit code 128 + the signal. An export killed by SIGKILL cannot
clean up; the next export to the same path deletes what it left, and only that. Cancelling
``aexport_runs`` / ``aimport_archive`` gives nothing or the complete result, never a part.

Real processes, real signals, real files: a store of 256 MB of values, so that a copy takes
long enough to be interrupted; each signal is sent once the copy is seen under way.
"""

from __future__ import annotations

import glob
import hashlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from asyncflow import Flow, aexport_runs, aimport_archive, read_archive
from tests._storefixture import T, write_run

ROOT = Path(__file__).resolve().parents[1]
FLOW = "Heavy"
RUNS = 4


@pytest.fixture(scope="module")
def heavy(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store of RUNS runs, each holding 64 MB of distinct random bytes (2 values)."""
    path = str(tmp_path_factory.mktemp("heavy") / "heavy.db")
    for _ in range(RUNS):
        values = {f"v{i}": os.urandom(32 << 20) for i in range(2)}
        write_run(path, FLOW, [T("start", artifacts=values), T("end")])
    return path


@pytest.fixture(scope="module")
def heavy_archive(heavy: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("heavy_archive") / "all.afa")
    cli("export", FLOW, "-o", path, "--store", heavy).check_returncode()
    return path


def _host_tag() -> str:
    # Temporary archives are <archive>.<pid>.<host tag>.<random>.tmp (see _store/_export.py).
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asyncflow", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


def start_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "asyncflow", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def wait_for(ready: Callable[[], bool], proc: subprocess.Popen[str] | None = None) -> None:
    deadline = time.monotonic() + 120
    while not ready():
        assert proc is None or proc.poll() is None, "finished before it could be stopped"
        assert time.monotonic() < deadline, "never got under way"
        time.sleep(0.005)


def temps(dest: Path) -> list[str]:
    return glob.glob(f"{dest}.*.tmp*")


def temp_growing(dest: Path) -> Callable[[], bool]:
    def ready() -> bool:
        return any(os.path.getsize(t) > (4 << 20) for t in temps(dest) if os.path.exists(t))

    return ready


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_cli_export_leaves_no_file_behind(
    heavy: str, tmp_path: Path, signum: int
) -> None:
    dest = tmp_path / "all.afa"
    proc = start_cli("export", FLOW, "-o", str(dest), "--store", heavy)
    wait_for(temp_growing(dest), proc)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err
    assert "was cancelled by SIG" in err and "nothing was written" in err
    assert "Traceback" not in err
    assert os.listdir(tmp_path) == []


def test_the_next_export_removes_what_a_killed_export_left(heavy: str, tmp_path: Path) -> None:
    dest = tmp_path / "all.afa"
    proc = start_cli("export", FLOW, "-o", str(dest), "--store", heavy)
    wait_for(temp_growing(dest), proc)
    proc.kill()
    proc.communicate(timeout=60)
    left = temps(dest)
    assert left, "SIGKILL left no temporary file: nothing to test"
    # Temporary files the next export must keep: one of a live process (this one), one made
    # on another host (its pid means nothing here), and files that only look alike.
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(dead.stdout)
    kept = [
        f"{dest}.{os.getpid()}.{_host_tag()}.0123abcd.tmp",
        f"{dest}.{dead_pid}.{'0' * 8 if _host_tag() != '0' * 8 else '1' * 8}.0123abcd.tmp",
        f"{dest}.notes.tmp",
        str(tmp_path / f"other.afa.{dead_pid}.{_host_tag()}.0123abcd.tmp"),
    ]
    gone = f"{dest}.{dead_pid}.{_host_tag()}.0123abcd.tmp"
    for name in [*kept, gone]:
        Path(name).write_bytes(b"x")
    done = cli("export", f"{FLOW}/1", "-o", str(dest), "--store", heavy)
    assert done.returncode == 0, done.stderr
    assert read_archive(dest, verify=True).runs == (f"{FLOW}/1",)
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in [*kept, dest])


def test_a_signal_during_cli_import_leaves_no_new_store(heavy_archive: str, tmp_path: Path) -> None:
    target = tmp_path / "new.db"
    proc = start_cli("import", heavy_archive, "--store", str(target))
    wait_for(target.exists, proc)
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "was cancelled by SIGTERM" in err and "Traceback" not in err
    assert os.listdir(tmp_path) == []


def test_a_signal_during_cli_import_leaves_the_store_as_it_was(
    heavy_archive: str, tmp_path: Path
) -> None:
    target = tmp_path / "mine.db"
    write_run(str(target), "Mine", [T("end", artifacts={"x": 1})])
    before = runs_in(target)
    wal = Path(f"{target}-wal")
    proc = start_cli("import", heavy_archive, "--store", str(target))
    wait_for(lambda: wal.exists() and wal.stat().st_size > (4 << 20), proc)  # copying
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "was cancelled by SIGTERM; nothing was written" in err
    assert runs_in(target) == before


def runs_in(store: Path) -> list[tuple[str, int]]:
    conn = sqlite3.connect(store)
    try:
        return conn.execute("SELECT flow, id FROM runs ORDER BY id").fetchall()
    finally:
        conn.close()


@pytest.mark.anyio
async def test_cancelling_an_export_leaves_nothing_or_the_complete_archive(
    heavy: str, tmp_path: Path
) -> None:
    with Flow(FLOW, store=heavy) as flow:
        runs = flow.runs()
    outcomes = set()
    for delay in (None, 0.05, 0.2, 0.5, 0.8, 1.2):
        dest = tmp_path / f"c{delay}.afa"
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(aexport_runs, dest, runs)
                if delay is None:  # once the copy is seen under way
                    while not temp_growing(dest)():
                        await anyio.sleep(0.005)
                else:
                    await anyio.sleep(delay)
                scope.cancel()
        assert temps(dest) == []
        assert dest.exists() or scope.cancelled_caught
        if dest.exists():  # finished before (or while) the cancellation arrived
            assert len(read_archive(dest, verify=True).runs) == RUNS
            outcomes.add("complete")
        else:
            outcomes.add("nothing")
    assert "nothing" in outcomes


@pytest.mark.anyio
async def test_cancelling_an_import_leaves_no_store_or_every_run(
    heavy_archive: str, tmp_path: Path
) -> None:
    outcomes = set()
    for delay in (None, 0.3, 1.0, 2.0, 4.0):
        target = tmp_path / f"t{delay}.db"
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(aimport_archive, heavy_archive, target)
                if delay is None:  # once the new store exists
                    while not target.exists():
                        await anyio.sleep(0.005)
                else:
                    await anyio.sleep(delay)
                scope.cancel()
        assert target.exists() or scope.cancelled_caught
        if target.exists():  # committed before (or while) the cancellation arrived
            assert len(runs_in(target)) == RUNS
            outcomes.add("complete")
        else:
            assert not Path(f"{target}-wal").exists()
            outcomes.add("nothing")
    assert "nothing" in outcomes
