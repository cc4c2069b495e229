"""The store half of the fuzz run: damage a *store* file (not an archive), then read it.

A store has no manifest and no digest: nothing vouches for it when it is opened, so every
read must defend itself. The reference store is the fuzz flow's source store (the runs of
``tests/_fuzzarchive.py``: every codec, a chunked numpy array, ordinary pickles and a pickled
canary), copied into one file with its runs marked untrusted, as a store received from a
colleague would be: its pickles must never load, so the canary must never fire.

**A case** copies the reference store, applies one *damage* kind (``tests/_fuzzmutate``:
bit flips, random overwrites, zeroed, copied or swapped pages, truncation, appended bytes,
flips inside value payloads), then reads everything the client can read (sync and async)
in the worker process, whose address space is capped (``RLIMIT_AS``, see
:func:`cap_memory`). Outcomes, as for archives (``tests/_fuzzarchive.py``):

``same`` / ``clear``
    every reading equals the reference, or ends in an ``AsyncflowError`` naming the file.
``unchecked``
    something read back different, without an error. A store has no digest over its
    records (an archive has), so a page copied over an index page can change which rows a
    query finds; and a plain store read does not hash values over 1 MiB (it would double
    the load time of a large array; ``verify``, import and archive reads do). Values up to
    1 MiB and every pickle are hashed at each read. Counted and reported
    (``chunked_differs`` says how many of them were a large value).
``OTHER``
    anything else: a raw exception (``MemoryError`` under the cap included), a pickle that
    loaded or a marker file, a hang (the pool's timeout), a crash. Must be 0.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import resource
import shutil
import sqlite3
import time
from typing import Any

from tests import _fuzzmutate as mut
from tests._fuzzread import Verdict, judge, read_store

__all__ = [
    "ADDRESS_SPACE",
    "STORE_DAMAGE",
    "StoreCases",
    "cap_memory",
    "make_reference_store",
    "peak_rss_mib",
    "store_case_kind",
]

# Damage only: an attacker's SQL edit of a store is simply a store with other contents.
STORE_DAMAGE = {k: v for k, v in mut.DAMAGE.items() if k != "manifest_flip"}
# The worker's address space cap: Python, numpy, SQLite's 1 GiB mmap window and a few
# threads' stacks fit with room to spare; a reader allocating what a damaged file claims
# (gigabytes) does not.
ADDRESS_SPACE = 3 << 30


def cap_memory(limit: int = ADDRESS_SPACE) -> None:
    """Cap this process's address space (a failed allocation is a ``MemoryError``)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_reference_store(source: str, dest: str) -> str:
    """``source`` as one file at ``dest`` (no -wal beside it), its runs untrusted."""
    with (
        contextlib.closing(sqlite3.connect(source)) as src,
        contextlib.closing(sqlite3.connect(dest)) as out,
    ):
        src.backup(out)
        with out:
            out.execute("UPDATE runs SET trusted = 0")
        out.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return dest


def store_case_kind(seed: int) -> tuple[str, random.Random]:
    """The damage kind of the store case of this seed, and the random source it goes on with."""
    rng = random.Random(seed)
    return "store:" + rng.choice(sorted(STORE_DAMAGE)), rng


def _chunked_keys(path: str) -> tuple[str, ...]:
    """Reading keys of the artifacts whose value is chunked (more than 1 MiB)."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        rows = conn.execute(
            "SELECT a.run_id, a.task_id, a.name FROM artifacts AS a JOIN blobs AS b "
            "ON b.sha = a.sha WHERE b.nchunks > 0"
        ).fetchall()
    return tuple(key for r, t, n in rows for key in mut.artifact_key(r, t, n))


class StoreCases:
    """Runs store cases in a worker (its folder is the current directory)."""

    def __init__(self, store: str, folder: str, markers: tuple[str, ...]) -> None:
        self.store = store
        self.folder = folder
        self.markers = markers
        self.facts = mut.learn(store)
        self.ref = read_store(store)
        self.chunked = _chunked_keys(store)
        fired = [m for m in markers if os.path.exists(m)]
        if fired or any(v[0] == "raw" for v in self.ref.out.values()):
            raise AssertionError(f"the pristine store does not read cleanly ({fired})")

    def run(self, number: int, seed: int) -> dict[str, Any]:
        """Run one case; the result as a JSON-able dict (op ``store``)."""
        start = time.monotonic()
        kind, rng = store_case_kind(seed)
        result: dict[str, Any] = {"case": number, "seed": seed, "kind": kind, "ops": {}}
        work = os.path.join(self.folder, "store-case")
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        try:
            path = os.path.join(work, "damaged.db")
            shutil.copyfile(self.store, path)
            result["what"] = STORE_DAMAGE[kind.removeprefix("store:")](path, rng, self.facts).what
            got = read_store(path)
            verdict = judge(self.ref, got, ("*",))
            if verdict.outcome == "accepted":
                verdict = Verdict("unchecked", verdict.errors, verdict.detail)
                differs = judge(self.ref, got, self.chunked).outcome == "accepted"
                result["chunked_differs"] = differs
            fired = [os.path.basename(m) for m in self.markers if os.path.exists(m)]
            if fired:
                verdict = Verdict("OTHER", verdict.errors, f"unpickling happened: {fired}")
                for marker in self.markers:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(marker)
            result["ops"]["store"] = dataclasses.asdict(verdict)
        finally:
            shutil.rmtree(work, ignore_errors=True)
            result["seconds"] = round(time.monotonic() - start, 3)
            result["peak_rss_mib"] = round(peak_rss_mib(), 1)
        return result
