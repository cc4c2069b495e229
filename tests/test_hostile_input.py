"""Hostile and careless input at the edges: paths, ids, manifests and record values.

Each test plays the attacker (or the careless user) for real: a named pipe where a store is
expected, a store path that reads like a SQLite URI, an archive whose manifest is nested a
hundred thousand deep, record values edited with ``sqlite3``, run ids past SQLite's range,
an export into a folder that cannot be written. The promise: a documented ``AsyncflowError``
subclass with a clear message, never a raw Python exception, a traceback or a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import asyncflow
from asyncflow import AsyncflowError, Flow, NotFoundError, StoreError, UsageError
from asyncflow._cli import main as asyncflow_cli
from tests.flows.disk import TinyFlow

ROOT = Path(__file__).resolve().parents[1]
FLOWS = ROOT / "tests" / "flows" / "disk.py"
# Far longer than any refusal takes; a hang is killed at this point and fails the test.
WAIT = 30
DEEP = "[" * 100_000 + "]" * 100_000


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asyncflow", *argv],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=WAIT,
    )


def _tiny_store(path: Path | str) -> str:
    asyncio.run(TinyFlow(store=str(path), echo=False).run())
    from asyncflow._store._store import Store

    Store.close_all()
    return str(path)


def _outcome(make: Callable[[], object]) -> BaseException | None:
    try:
        make()
    except Exception as exc:  # what the test checks: the kind of exception
        return exc
    return None


# --- 1. a named pipe (or device) given as a store or archive --------------------------------


def _fifo_commands(tmp: Path) -> dict[str, list[str]]:
    good = _tiny_store(tmp / "good.db")
    archive = str(tmp / "good.afa")
    Flow("TinyFlow", good)["1"].export(archive)
    py = [sys.executable, "-c"]
    return {
        "runs": [sys.executable, "-m", "asyncflow", "runs", "--store", "fifo"],
        "archive": [sys.executable, "-m", "asyncflow", "archive", "fifo"],
        "import from": [sys.executable, "-m", "asyncflow", "import", "fifo", "--store", "n.db"],
        "import into": [sys.executable, "-m", "asyncflow", "import", archive, "--store", "fifo"],
        "export onto": [
            *[sys.executable, "-m", "asyncflow", "export", "TinyFlow/1", "-o", "fifo"],
            *["--force", "--store", good],
        ],
        "flow run": [sys.executable, str(FLOWS), "TinyFlow", "run", "--store", "fifo"],
        "Flow()": [*py, "import asyncflow; asyncflow.Flow('TinyFlow', 'fifo')"],
        "read_archive": [*py, "import asyncflow; asyncflow.read_archive('fifo')"],
    }


@pytest.mark.parametrize(
    "entry",
    [
        "runs",
        "archive",
        "import from",
        "import into",
        "export onto",
        "flow run",
        "Flow()",
        "read_archive",
    ],
)
def test_a_named_pipe_is_refused_as_store_or_archive_never_waited_on(
    tmp_path: Path, entry: str
) -> None:
    command = _fifo_commands(tmp_path)[entry]
    os.mkfifo(tmp_path / "fifo")
    # A hang is a failure: subprocess.run raises TimeoutExpired (and kills the child).
    done = subprocess.run(
        command, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=WAIT
    )
    assert done.returncode != 0
    assert "named pipe (FIFO), not a regular file" in done.stderr, done.stderr
    if command[1:3] == ["-m", "asyncflow"] or command[1] == str(FLOWS):
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    else:
        assert "asyncflow._errors.StoreError" in done.stderr, done.stderr
    assert (tmp_path / "fifo").exists() and not (tmp_path / "n.db").exists()


def test_a_named_pipe_beside_a_store_as_its_wal_is_refused(tmp_path: Path) -> None:
    store = _tiny_store(tmp_path / "s.db")
    os.mkfifo(store + "-wal")
    done = _cli("runs", "--store", store, cwd=tmp_path)
    assert done.returncode == 2 and "s.db-wal' is a named pipe" in done.stderr, done.stderr


def test_a_device_is_not_a_store() -> None:
    exc = _outcome(lambda: Flow("TinyFlow", "/dev/null"))
    assert isinstance(exc, StoreError) and "character device" in str(exc)


def test_a_path_with_nul_or_of_the_wrong_type_is_a_clear_error(tmp_path: Path) -> None:
    store = _tiny_store(tmp_path / "s.db")
    run = Flow("TinyFlow", store)["1"]
    exc = _outcome(lambda: run.export(str(tmp_path / "a\0b.afa")))
    assert isinstance(exc, StoreError) and "NUL character" in str(exc)
    exc = _outcome(lambda: Flow("TinyFlow", str(tmp_path / "a\0b.db")))
    assert isinstance(exc, StoreError) and "NUL character" in str(exc)
    exc = _outcome(lambda: Flow("TinyFlow", 3))  # type: ignore[arg-type]
    assert isinstance(exc, UsageError) and "store=3 is not a path" in str(exc)
    assert Flow("TinyFlow", os.fsencode(store)).latest_run is not None  # type: ignore[arg-type]


# --- 2. store paths that read like SQLite URIs -------------------------------------------------

ODD_NAMES = [
    "x%41.db",
    "file:u.db",
    "file:///tmp/f.db",
    "a?mode=ro.db",
    "a#b.db",
    "with space.db",
    "new\nline.db",
    "ünïcödé.db",
    "%2e%2e%2fup.db",
]


@pytest.mark.parametrize("name", ODD_NAMES)
def test_a_store_path_is_a_file_name_never_a_sqlite_uri(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.chdir(tmp_path)
    os.makedirs(os.path.dirname(name) or ".", exist_ok=True)
    assert asyncio.run(TinyFlow(store=name, echo=False).run()).status == "succeeded"
    run = Flow("TinyFlow", name)["1"]
    assert run["start"].task.data.x == 1
    # The store is exactly the file named (and its companions), nowhere else.
    made = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()}
    name = os.path.normpath(name)  # 'file:///tmp/f.db' is the file 'f.db' in 'file:/tmp'
    assert made <= {name, name + "-wal", name + "-shm"}, made
    # Archives: exported to, read from and imported into files of such names.
    archive = name.replace(".db", ".afa")
    run.export(archive)
    assert asyncflow.read_archive(archive, verify=True).runs == ("TinyFlow/1",)
    target = "in" + name.replace("/", "_")
    imported = asyncflow.import_archive(archive, store=target)
    assert [r["start"].task.data.x for r in imported] == [1]
    made = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()}
    assert {p for p in made if not p.endswith(("-wal", "-shm"))} == {name, archive, target}


# --- 3. a manifest nested too deep -------------------------------------------------------------


def _archive(tmp: Path) -> str:
    store = _tiny_store(tmp / "s.db")
    path = str(tmp / "a.afa")
    Flow("TinyFlow", store)["1"].export(path)
    return path


def _set_manifest(path: str, text: str) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE store_info SET value = ? WHERE key = 'archive'", (text,))


@pytest.mark.parametrize("where", ["exported_by", "extra key"])
def test_a_manifest_nested_too_deep_is_a_damaged_archive(tmp_path: Path, where: str) -> None:
    path = _archive(tmp_path)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        (text,) = conn.execute("SELECT value FROM store_info WHERE key = 'archive'").fetchone()
    manifest = json.loads(text)
    if where == "exported_by":
        manifest["exported_by"] = None
        edited = json.dumps(manifest).replace('"exported_by": null', '"exported_by": ' + DEEP)
    else:
        edited = json.dumps(manifest).replace("{", '{"zz": ' + DEEP + ", ", 1)
    _set_manifest(path, edited)
    for make in (
        lambda: asyncflow.read_archive(path),
        lambda: asyncflow.read_archive(path, verify=True),
        lambda: Flow("TinyFlow", path),
        lambda: asyncflow.import_archive(path, store=str(tmp_path / "in.db")),
    ):
        exc = _outcome(make)
        assert isinstance(exc, StoreError), repr(exc)
        assert "its manifest is not valid JSON" in str(exc) and path in str(exc)
    done = _cli("archive", path, cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr


# --- 4. record values asyncflow never writes --------------------------------------------------

EDITS = {
    "heartbeat as text": (
        "UPDATE runs SET status = 'running', heartbeat_at = 'soon', owner_pid = 1, "
        "owner_host = 'elsewhere'"
    ),
    "created_at as text": "UPDATE runs SET created_at = 'yesterday'",
    "created_at 1e308": "UPDATE runs SET created_at = 1e308",
    "finished_at -1e20": "UPDATE runs SET finished_at = -1e20",
    "tag as a blob": "INSERT INTO run_tags VALUES (1, x'ff00fe')",
    "task time as text": "UPDATE tasks SET started_at = 'noon'",
    "graph nested deep": "UPDATE runs SET graph = '" + DEEP + "'",
    "graph not JSON": "UPDATE runs SET graph = 'nope'",
    "provenance nested deep": "UPDATE runs SET imported = '" + DEEP + "'",
    "flow name as a blob": "UPDATE runs SET flow = x'ff'",
}


def _edited_store(tmp: Path, sql: str) -> str:
    store = _tiny_store(tmp / "s.db")
    with contextlib.closing(sqlite3.connect(store)) as conn, conn:
        conn.execute(sql)
    return store


def _reads(store: str, tmp: Path) -> dict[str, Callable[[], object]]:
    def everything() -> object:
        run = Flow("TinyFlow", store)["1"]
        return (
            run.status,
            run.created_at,
            run.finished_at,
            run.tags,
            run.graph,
            run.imported_from,
            [t.started_at for s in run for t in s],
        )

    async def aget() -> object:
        flow = await Flow.aopen("TinyFlow", store)
        run = await flow.aget(1)
        return run.created_at, run.graph

    return {
        "runs()": lambda: [r.created_at for r in Flow("TinyFlow", store).runs()],
        "flow[1]": everything,
        "aget": lambda: asyncio.run(aget()),
        "gc": lambda: asyncflow.gc(store, keep_last=1, dry_run=True),
        "stats": lambda: asyncflow.stats(store),
        "export": lambda: Flow("TinyFlow", store)["1"].export(str(tmp / "o.afa")),
        "resume": lambda: asyncio.run(TinyFlow(store=store, echo=False).resume(run_id=1)),
    }


@pytest.mark.parametrize("edit", list(EDITS))
def test_a_record_value_asyncflow_never_writes_is_a_store_error_everywhere(
    tmp_path: Path, edit: str
) -> None:
    store = _edited_store(tmp_path, EDITS[edit])
    refused = 0
    for name, read in _reads(store, tmp_path).items():
        exc = _outcome(read)
        if exc is None:
            continue
        assert isinstance(exc, AsyncflowError), f"{name}: {exc!r}"
        if isinstance(exc, StoreError):
            refused += 1
            said = str(exc)
            assert store in said and "restore it from a copy" in said, f"{name}: {said}"
            assert "never writes" in said or "is not valid JSON" in said, f"{name}: {said}"
    assert refused > 0
    for argv in (["runs"], ["show", "TinyFlow/1"], ["gc", "--keep-last", "1", "--dry-run"]):
        done = _cli(*argv, "--store", store, cwd=tmp_path)
        assert "Traceback" not in done.stderr, (argv, done.stderr)
        assert done.returncode in (0, 2), (argv, done.stderr)


@pytest.mark.parametrize("deleted_at", ["1e308", '"yesterday"', "-1e300", "NaN"])
def test_a_gc_note_with_an_impossible_time_is_ignored(tmp_path: Path, deleted_at: str) -> None:
    store = _tiny_store(tmp_path / "s.db")
    note = '{"flow": "TinyFlow", "deleted_at": ' + deleted_at + "}"
    with contextlib.closing(sqlite3.connect(store)) as conn, conn:
        conn.execute("INSERT INTO store_info VALUES ('gc_deleted:99', ?)", (note,))
    exc = _outcome(lambda: Flow("TinyFlow", store)["99"])
    assert isinstance(exc, NotFoundError) and "has no run 99" in str(exc)
    done = _cli("show", "TinyFlow/99", "--store", store, cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr


# --- 5. run ids and limits past SQLite's range ---------------------------------------------------

BIG = 2**70
HUGE = "9" * 5000


def test_a_run_id_past_any_run_id_is_not_found(tmp_path: Path) -> None:
    store = _tiny_store(tmp_path / "s.db")
    flow = Flow("TinyFlow", store)
    for asked, shown in ((BIG, str(BIG)), (str(BIG), str(BIG)), (HUGE, "9" * 20 + "...")):
        exc = _outcome(lambda asked=asked: flow[asked])  # type: ignore[misc]
        assert isinstance(exc, NotFoundError), repr(exc)
        assert f"has no run {shown} in the store" in str(exc) and "newest first: 1" in str(exc)
        assert asked not in flow
        exc = _outcome(lambda asked=asked: asyncio.run(flow.aget(asked)))  # type: ignore[misc]
        assert isinstance(exc, NotFoundError), repr(exc)
    exc = _outcome(lambda: flow[10**5000])
    assert isinstance(exc, NotFoundError) and "a number past 2**63 - 1" in str(exc)
    exc = _outcome(lambda: asyncio.run(TinyFlow(store=store, echo=False).resume(run_id=BIG)))
    assert isinstance(exc, NotFoundError) and f"has no run {BIG}" in str(exc), repr(exc)
    exc = _outcome(lambda: flow[2**63 - 1])  # the largest run id: in range, not found
    assert isinstance(exc, NotFoundError) and f"has no run {2**63 - 1} in" in str(exc)
    assert flow["1"].id == "1" and 1 in flow


@pytest.mark.parametrize("limit", [BIG, -1, 2**63, True, 1.5])
def test_a_limit_that_is_no_number_of_runs_is_a_usage_error(tmp_path: Path, limit: Any) -> None:
    flow = Flow("TinyFlow", _tiny_store(tmp_path / "s.db"))
    exc = _outcome(lambda: flow.runs(limit=limit))
    assert isinstance(exc, UsageError) and "is not a number of runs" in str(exc)
    assert len(flow.runs(limit=2**63 - 1)) == 1 and flow.runs(limit=0) == []


@pytest.mark.parametrize(
    "argv",
    [
        ["show", f"TinyFlow/{BIG}"],
        ["show", f"TinyFlow/{HUGE}"],
        ["dump", f"TinyFlow/{BIG}/x"],
        ["tag", f"TinyFlow/{BIG}", "x"],
        ["trust", f"TinyFlow/{BIG}"],
        ["export", f"TinyFlow/{BIG}", "-o", "x.afa"],
        ["runs", "--limit", str(BIG)],
        ["runs", "--limit", HUGE],
    ],
)
def test_the_command_line_says_a_huge_run_id_is_not_found(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    store = _tiny_store(tmp_path / "s.db")
    with contextlib.chdir(tmp_path):
        try:
            code = asyncflow_cli([*argv, "--store", store])
        except SystemExit as exit_:  # argparse's own refusals
            code = int(exit_.code or 0)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert "has no run" in err or "--limit" in err, err


def test_flow_resume_with_a_huge_origin_id_on_the_command_line(tmp_path: Path) -> None:
    store = _tiny_store(tmp_path / "s.db")
    resume = ["--origin-run-id", str(BIG)]
    done = subprocess.run(
        [sys.executable, str(FLOWS), "TinyFlow", "resume", *resume, "--store", store],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert f"has no run {BIG}" in done.stderr


# --- 6. an export that cannot write its archive -------------------------------------------------


def _unwritable_folder(tmp: Path) -> Path:
    folder = tmp / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):  # root may write anyway: a folder no one may create in
        return Path("/proc")
    return folder


def test_an_export_into_a_folder_it_cannot_write_names_the_archive(tmp_path: Path) -> None:
    store = _tiny_store(tmp_path / "s.db")
    run = Flow("TinyFlow", store)["1"]
    folder = _unwritable_folder(tmp_path)
    dest = str(folder / "x.afa")
    try:
        exc = _outcome(lambda: run.export(dest))
    finally:
        (tmp_path / "ro").chmod(0o755)
    assert isinstance(exc, StoreError), repr(exc)
    said = str(exc)
    assert said.startswith(f"cannot write the archive {dest!r}: its folder"), said
    assert "export to a folder you may write" in said and "store file" not in said
    assert not [p for p in os.listdir(folder) if p.startswith("x.afa")]


_FSIZE = """
import resource, signal, sys
import asyncflow
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
run = asyncflow.Flow("TinyFlow", sys.argv[1])["1"]  # the store's files exist at full size
resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))  # smaller than any archive
try:
    run.export(sys.argv[2])
except asyncflow.StoreError as exc:
    print(exc)
"""


def test_an_export_the_system_refuses_to_write_names_the_archive(tmp_path: Path) -> None:
    store = _tiny_store(tmp_path / "s.db")
    dest = str(tmp_path / "out.afa")
    done = subprocess.run(
        [sys.executable, "-c", _FSIZE, store, dest],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert done.stdout.startswith(f"cannot write the archive {dest!r}: "), (
        done.stdout,
        done.stderr,
    )
    assert "store file" not in done.stdout and not os.path.exists(dest)
    assert not [p for p in os.listdir(tmp_path) if p.startswith("out.afa")]
    shutil.rmtree(tmp_path / "unused", ignore_errors=True)


def test_an_export_onto_a_full_disk_names_the_archive_not_the_store(tmp_path: Path) -> None:
    """A real full disk: a 1 MiB tmpfs (needs root to mount; skipped elsewhere)."""
    store = _tiny_store(tmp_path / "s.db")
    with contextlib.closing(sqlite3.connect(store)) as conn, conn:  # more than 1 MiB to copy
        conn.execute("UPDATE tasks SET stdout = ?", ("x" * (2 << 20),))
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)]
    if os.geteuid() != 0 or subprocess.run(mount, capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        dest = str(disk / "out.afa")
        exc = _outcome(lambda: Flow("TinyFlow", store)["1"].export(dest))
        assert isinstance(exc, StoreError), repr(exc)
        said = str(exc)
        assert said.startswith(f"cannot write the archive {dest!r}: the disk holding it is full")
        assert "store file" not in said and os.listdir(disk) == []
    finally:
        subprocess.run(["umount", str(disk)], check=True)
