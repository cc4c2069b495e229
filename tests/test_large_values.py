"""Large (chunked) values: the memory a load takes, the connection it leaves behind, and
the copy of a large payload (``_codecs._bulk.copy_into``).

A large blob is read into one buffer that the numpy codec adopts, with SQLite's memory map of
the file turned off while its chunk rows are read (``_queries._assemble``): read through the
map, every page of the file read stays in the process's RSS, so a load peaked at twice the
value. The map is turned back on afterwards for the connection's other reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import anyio
import numpy as np
import pytest

from asyncflow import Flow, FlowSpec, step
from asyncflow._codecs import copy_into, payload_buffer
from asyncflow._codecs._bulk import SLICE
from asyncflow._store._db import MMAP_SIZE
from tests.flows import archive_flows as af

ROOT = Path(__file__).resolve().parents[1]
MIB = 96


class PendingFlow(FlowSpec):
    """start sets a 5 MiB array; read (run while it may still be pending) mutates it."""

    ORIGINAL: ClassVar[np.ndarray] = np.arange(5 << 17, dtype=np.float64)

    @step
    def start(self) -> None:
        self.big = self.ORIGINAL.copy()
        self.next(self.read)

    @step
    def read(self) -> None:
        self.same = bool(np.array_equal(self.big, self.ORIGINAL))
        self.first = int(self.big[1])
        self.big[0] = 99  # in place: saved as read's own value
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


# Loads the array of the latest Big run with the sync client, then with the async one, and
# reports each load's rise of the peak RSS (VmHWM, reset through /proc/self/clear_refs; it
# counts file pages mapped by SQLite too) over the RSS before it, in KiB, and the client
# connection's mmap_size after the load.
CHILD = r"""
import hashlib, json, sys
import anyio
from asyncflow import Flow

def status(field):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))

def reset():
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5\n")

store = sys.argv[1]
out = {}
with Flow("Big", store=store) as flow:
    task = flow.latest_run["start"].task
    task.data  # the reader is open: the load alone is measured
    reset()
    before = status("VmRSS")
    array = task.data.array
    out["sync_rise"] = status("VmHWM") - before
    out["sha"] = hashlib.sha256(array).hexdigest()
    out["sync_mmap"] = flow._handle._conn.execute("PRAGMA mmap_size").fetchone()[0]
    del array

async def aload():
    async with Flow.aopen("Big", store=store) as flow:
        run = await flow.alatest_run()
        start = await run.astep("start")
        await start.adata("mib")  # the connection is open
        reset()
        before = status("VmRSS")
        array = await start.adata("array")
        out["async_rise"] = status("VmHWM") - before
        out["async_sha"] = hashlib.sha256(array).hexdigest()

anyio.run(aload)
print(json.dumps(out))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
def test_a_large_load_holds_the_value_once(tmp_path: Path) -> None:
    store = str(tmp_path / "big.db")
    anyio.run(lambda: af.Big(store=store, echo=False).run(mib=MIB))
    expected = Flow("Big", store=store).latest_run["start"].task.data.array
    done = subprocess.run(
        [sys.executable, "-c", CHILD, store],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    sha = hashlib.sha256(expected).hexdigest()
    assert seen["sha"] == sha and seen["async_sha"] == sha
    # The value itself is 1.0; reading it through SQLite's map of the file made it 2.0.
    limit = 1.3 * MIB * 1024
    assert seen["sync_rise"] < limit, seen
    assert seen["async_rise"] < limit, seen
    assert seen["sync_mmap"] == MMAP_SIZE  # turned back on for the connection's other reads


def test_a_large_load_keeps_an_unmapped_connection_unmapped(tmp_path: Path) -> None:
    store = str(tmp_path / "big.db")
    anyio.run(lambda: af.Big(store=store, echo=False).run(mib=2))
    with Flow("Big", store=store) as flow:
        task = flow.latest_run["start"].task
        conn = flow._handle._conn
        assert conn is not None
        conn.execute("PRAGMA mmap_size = 0")
        array = task.data.array
        assert conn.execute("PRAGMA mmap_size").fetchone()[0] == 0
    assert array.nbytes == 2 << 20 and array.dtype == np.uint8


# --- copy_into: one numpy call (GIL released) when numpy is imported, else slices ---------


@pytest.mark.parametrize("size", [1, SLICE - 1, SLICE, SLICE + 1, 3 * SLICE + 7])
@pytest.mark.parametrize("dest_kind", ["bytearray", "payload_buffer"])
def test_copy_into_copies_every_byte(size: int, dest_kind: str) -> None:
    data = np.random.default_rng(size).integers(0, 256, size=size, dtype=np.uint8)
    sources = [data, data.tobytes(), memoryview(data.tobytes()).toreadonly(), data.view(np.int8)]
    for src in sources:
        dest = bytearray(size) if dest_kind == "bytearray" else payload_buffer(size)
        with memoryview(dest) as view:
            copy_into(view, src)
        assert bytes(dest) == data.tobytes()


def test_copy_into_without_numpy_copies_by_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    # The slice path, as taken by a process that never imported numpy (a bytes value).
    monkeypatch.delitem(sys.modules, "numpy")
    data = bytes(range(256)) * (3 * SLICE // 256 + 1)
    dest = payload_buffer(len(data))
    with memoryview(dest) as view:
        copy_into(view, data)
    assert bytes(dest) == data


def test_a_pending_large_array_read_by_the_next_step_is_its_own(tmp_path: Path) -> None:
    # The next step reads the value still pending in the writer's queue (copy_into into a
    # fresh buffer): equal to what was set, and mutating it changes neither the stored
    # value nor the array the first step set.
    store = str(tmp_path / "pending.db")
    run = anyio.run(lambda: PendingFlow(store=store, echo=False).run())
    assert run["read"].task.data.same and run["read"].task.data.first == 1
    np.testing.assert_array_equal(run["start"].task.data.big, PendingFlow.ORIGINAL)
    assert run["read"].task.data.big[0] == 99
