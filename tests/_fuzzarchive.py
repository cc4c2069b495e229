"""The archive fuzz harness: damage or edit a run archive at random, then open, verify and
import it, and check that each ends in a clear error or in the right data.

Used by ``benchmarks/fuzz_archive.py`` (1,000+ cases, a stress run) and by
``tests/test_fuzz_archive.py`` (a few hundred, in CI), through ``tests/_fuzzpool.py``, which
runs the cases in worker processes (each one this module, run as ``python -m``).

**The reference.** :func:`build` runs ``tests/flows/fuzz.py``'s ``FuzzFlow`` three times (a
run that succeeded, with tags and a foreach with a retried task and a join; a run that failed,
its ``risky`` step's exception caught and its ``end`` step's not; and the resume of that run)
and exports the three runs into one archive. It also makes two target stores to import into:
one holding an unrelated run of the same flow (so most values deduplicate, and the target's
copies of the pickles are signed by this user), and a copy of it into which the archive was
already imported once. Each worker then reads everything the client can read from the
pristine archive (see :func:`read_store`): runs, statuses, times, tags, parameters, graph,
source, steps, tasks, stdout/stderr, attempts, every artifact's encoding, size and sha,
and every value, through the sync API and again through the awaitable one (``tests/_fuzzread``;
the value of each (name, sha) is read once: the artifacts that pass it on unchanged share the
blob, and their rows are all read). Pickled values are expected to raise
``UntrustedArtifactError``: that error *is* their reference reading.

**A case** copies the archive, applies one mutation drawn from its seed (``tests/_fuzzmutate``:
damage, or an attacker's SQL edit with the digest recomputed), then on a fresh copy each:

(a) ``open``: ``Flow("FuzzFlow", store=copy)`` and read everything (sync and async);
(b) ``verify``: ``asyncflow.read_archive(copy, verify=True)``, the manifest compared with the
    pristine one;
(c) ``import``: ``asyncflow.import_archive(copy, store=target)`` into a copy of one of the
    targets, then read back through the sync API everything of the runs it returned (run ids
    are compared as the archive numbered them, through ``run.imported_from``). When the import
    fails, the target must be exactly as before (same row counts in every table, same payload
    bytes, ``PRAGMA integrity_check`` ok): all or nothing. When it succeeds, the target must
    pass ``PRAGMA integrity_check``.

**Outcomes** of one operation:

``same``
    every reading equals the reference.
``clear``
    at least one reading raised an ``AsyncflowError`` the reference did not, and every such
    error names the file (the archive, or the target store for an import), or is an
    ``UntrustedArtifactError`` (which names the artifact and how to trust its run); every
    other reading equals the reference, or was not reached because of the error. One more
    reading may differ then: an artifact's listing (encoding, size, sha) comes from the
    records alone, and reading the value is what checks the bytes; so a listing may differ
    when reading that same artifact's value ended in a clear error.
``accepted``
    different data that is *self-consistent*, from an attacker kind that can make such data:
    see ``ACCEPTED`` below. Only the readings in the scope the mutation names may differ.
``OTHER``
    anything else: an exception that is not an ``AsyncflowError``, an ``AsyncflowError`` that
    does not name the file, data that differs from the reference without an error (outside an
    accepted scope), any pickled value that loaded (the readings of a ``pickle`` artifact must
    be an error), a canary or ``Loud`` marker file appearing (unpickling happened), an import
    that failed but changed the target, a worker that crashed, or a case that ran past the
    timeout (the worker is killed and replaced). Must be 0.

**What is accepted, and why** (``ACCEPTED``). An attacker who edits an archive and recomputes
its digest can make any archive they like: the digest proves the file is intact, not who made
it. So from such an edit, a *valid archive with other contents* is a correct outcome, as long
as every value read is exactly what hash-verified bytes decode to, and nothing is unpickled.
The kinds that can make one, and what may then differ:

- ``sql_repoint``, ``sql_forge``, ``sql_canary``: the edited artifact (its sha, encoding,
  size and value): it now names another blob, which is read (and hash-checked) as such; a
  ``pickle`` blob must still raise ``UntrustedArtifactError``.
- ``sql_record``: the records of the edited run (status, error, tags, task output, and a
  value of the wrong kind that SQLite's column affinity turned into the right one, such as 5
  stored as the text '5'): records are what the archive says they are. Values of the wrong
  kind that stay so must be refused.

- ``sql_manifest``, when the digest was recomputed: the manifest read back, if its fields
  are all valid (an export time of 1970, a field a newer asyncflow might add); a field of the
  wrong type, or one that disagrees with the file, must still be refused.

And for every accepted kind, the manifest read back by ``verify``: its digest is new.

Every other kind must end in ``same`` or ``clear``: damage must never pass for data, and an
attacker's lies about sizes, encodings, chunks, bytes under a kept sha, trust flags, macs,
the manifest or the schema must be caught. ``runs.trusted`` and ``blobs.mac`` in an archive
never matter: trust comes only from this user's key (``trust=True`` at import).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import shutil
import sqlite3
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

import asyncflow
from asyncflow import Flow, UntrustedArtifactError
from tests import _fuzzmutate as mut
from tests._fuzzread import (
    FLOW,
    MISSING,
    Reading,
    Verdict,
    imported_runs,
    judge,
    read_manifest,
    read_store,
)
from tests._fuzzstore import StoreCases, cap_memory, make_reference_store, peak_rss_mib
from tests.flows.fuzz import CANARY_FILE, LOUD_FILE

__all__ = [
    "OPS",
    "Fixture",
    "Reading",
    "Verdict",
    "Worker",
    "build",
    "case_kind",
    "judge",
    "read_store",
    "store_state",
    "worker_main",
]

REPO = Path(__file__).resolve().parents[1]
OPS = ("open", "verify", "import")

# Kinds whose self-consistent edits may change what is read (see the module doc).
ACCEPTED = frozenset({"sql_repoint", "sql_forge", "sql_canary", "sql_record", "sql_manifest"})


# --- the reference archive and targets ------------------------------------------------------


@dataclass(frozen=True)
class Fixture:
    """The files a fuzz run works from (made once by :func:`build`)."""

    folder: str
    archive: str
    targets: tuple[str, ...]
    store: str = ""  # the reference store of the store cases (tests/_fuzzstore.py)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Fixture:
        data = json.loads(text)
        return cls(data["folder"], data["archive"], tuple(data["targets"]), data.get("store", ""))


def _checkpoint(path: str) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


async def _make_runs(source: str, work: str) -> None:
    from tests.flows.fuzz import FuzzFlow

    fail = os.path.join(work, "fail")
    await FuzzFlow(store=source, tags=["fuzz", "nightly"]).run(alpha=0.5, label="first")
    with open(fail, "w") as fh:
        fh.write("catch end\n")
    try:
        await FuzzFlow(store=source, tags=["fuzz"]).run(alpha=2.0, label="second", fail=fail)
    except asyncflow.StepFailed as exc:
        failed = exc.run
    else:
        raise AssertionError("the second run was meant to fail")
    with open(fail, "w") as fh:
        fh.write("catch\n")
    await FuzzFlow(store=source).resume(failed.id)


async def _make_target(target: str) -> None:
    from tests.flows.fuzz import FuzzFlow

    await FuzzFlow(store=target, tags=["local"]).run(alpha=0.5, label="local")


def build(folder: str) -> Fixture:
    """Make the reference archive and the target stores in ``folder`` (see the module doc).

    Runs flows in this process (with ``anyio.run``): call it from synchronous code.
    """
    os.makedirs(folder, exist_ok=True)
    source = os.path.join(folder, "source.db")
    archive = os.path.join(folder, "reference.afa")
    plain = os.path.join(folder, "target-plain.db")
    holding = os.path.join(folder, "target-holding.db")
    anyio.run(_make_runs, source, folder)
    asyncflow.export_runs(archive, Flow(FLOW, source).runs(), overwrite=True)
    anyio.run(_make_target, plain)
    _checkpoint(plain)
    shutil.copyfile(plain, holding)
    asyncflow.import_archive(archive, store=holding)
    _checkpoint(holding)
    store = make_reference_store(source, os.path.join(folder, "reference-store.db"))
    return Fixture(folder, archive, (plain, holding), store)


# --- one case, in a worker ------------------------------------------------------------------

_TABLES = (
    "runs", "run_tags", "run_params", "tasks", "attempts", "artifacts", "blobs", "blob_chunks",
)  # fmt: skip


def store_state(path: str) -> tuple[Any, ...]:
    """Row counts of every table, total payload bytes and the integrity check of a store."""
    conn = sqlite3.connect(path)
    try:
        counts = tuple(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in _TABLES)
        size = conn.execute("SELECT coalesce(sum(size), 0) FROM blobs").fetchone()[0]
        check = tuple(r[0] for r in conn.execute("PRAGMA integrity_check"))
    finally:
        conn.close()
    return (*counts, size, check)


def _kinds() -> list[str]:
    return sorted(mut.MUTATIONS)


def case_kind(seed: int) -> tuple[str, random.Random]:
    """The mutation kind of the case of this seed, and the random source it goes on with."""
    rng = random.Random(seed)
    return rng.choice(_kinds()), rng


class Worker:
    """Runs cases against one fixture, in its own folder (where canaries would land)."""

    def __init__(self, fixture: Fixture, folder: str) -> None:
        self.fixture = fixture
        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        os.chdir(folder)
        self.facts = mut.learn(fixture.archive)
        self.ref = read_store(fixture.archive)
        sync = {k: v for k, v in self.ref.out.items() if not k.startswith("async:")}
        self.ref_sync = Reading(self.ref.path, out=sync)
        self.ref_manifest = read_manifest(fixture.archive)
        self.targets = {t: store_state(t) for t in fixture.targets}
        self.markers = (os.path.join(folder, CANARY_FILE), os.path.join(folder, LOUD_FILE))
        self._check_reference()
        self._stores: StoreCases | None = None

    def run_store(self, number: int, seed: int) -> dict[str, Any]:
        """Run one store case (``tests/_fuzzstore.py``)."""
        if self._stores is None:
            self._stores = StoreCases(self.fixture.store, self.folder, self.markers)
        return self._stores.run(number, seed)

    def _check_reference(self) -> None:
        bad = [
            k
            for k, v in self.ref.out.items()
            if v[0] == "raw" or (v[0] == "error" and not _pickled_error(v))
        ]
        if bad or self.fired():
            raise AssertionError(f"the pristine archive does not read cleanly: {bad[:5]}")

    def fired(self) -> list[str]:
        return [os.path.basename(m) for m in self.markers if os.path.exists(m)]

    def run(self, number: int, seed: int) -> dict[str, Any]:
        """Run one case; the result as a JSON-able dict."""
        start = time.monotonic()
        kind, rng = case_kind(seed)
        result: dict[str, Any] = {"case": number, "seed": seed, "kind": kind, "ops": {}}
        work = os.path.join(self.folder, "case")
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        try:
            mutated = os.path.join(work, "mutated.afa")
            shutil.copyfile(self.fixture.archive, mutated)
            try:
                change = mut.MUTATIONS[kind](mutated, rng, self.facts)
            except Exception as exc:
                result["what"] = f"the mutation itself failed: {exc!r}"
                result["ops"] = {
                    op: dataclasses.asdict(Verdict("OTHER", detail=result["what"])) for op in OPS
                }
                return result
            result["what"] = change.what
            scope = change.scope if kind in ACCEPTED else ()
            target = self.fixture.targets[rng.randrange(len(self.fixture.targets))]
            ops = {
                "open": lambda: self._open(mutated, work, scope),
                "verify": lambda: self._verify(mutated, work, scope),
                "import": lambda: self._import(mutated, work, target, scope),
            }
            for op, fn in ops.items():
                verdict = fn()
                fired = self.fired()
                if fired:
                    verdict = Verdict(
                        "OTHER", verdict.errors, f"unpickling happened: {fired} appeared"
                    )
                    for marker in self.markers:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(marker)
                result["ops"][op] = dataclasses.asdict(verdict)
        finally:
            shutil.rmtree(work, ignore_errors=True)
            result["seconds"] = round(time.monotonic() - start, 3)
            result["peak_rss_mib"] = round(peak_rss_mib(), 1)
        return result

    def _copy(self, mutated: str, work: str, name: str) -> str:
        path = os.path.join(work, name)
        shutil.copyfile(mutated, path)
        return path

    def _open(self, mutated: str, work: str, scope: tuple[str, ...]) -> Verdict:
        path = self._copy(mutated, work, "open.afa")
        return judge(self.ref, read_store(path), scope)

    def _verify(self, mutated: str, work: str, scope: tuple[str, ...]) -> Verdict:
        path = self._copy(mutated, work, "verify.afa")
        return judge(self.ref_manifest, read_manifest(path), scope)

    def _import(self, mutated: str, work: str, template: str, scope: tuple[str, ...]) -> Verdict:
        path = self._copy(mutated, work, "import.afa")
        target = os.path.join(work, "target.db")
        shutil.copyfile(template, target)
        r = Reading(os.path.abspath(target), also=os.path.abspath(path))
        runs = r.get("import", lambda: asyncflow.import_archive(path, store=target), keep=False)
        if runs is MISSING:
            verdict = judge(self.ref, r)
            if verdict.outcome != "OTHER":
                after = store_state(target)
                if after != self.targets[template]:
                    return Verdict(
                        "OTHER",
                        verdict.errors,
                        f"a failed import changed the target: {self.targets[template]} -> {after}",
                    )
            return verdict
        uids = {run.uid for run in runs}
        # The target is a store like any other: the sync API reads it (the async one was
        # run on the archive itself; reading twice would make each case a third slower).
        got = read_store(target, imported_runs(uids), also=path, aread=False)
        verdict = judge(self.ref_sync, got, scope)
        check = store_state(target)[-1]
        if check != ("ok",):
            return Verdict(
                "OTHER", verdict.errors, f"the target fails its integrity check: {check}"
            )
        return verdict


def _pickled_error(reading: tuple[Any, ...]) -> bool:
    return bool(reading[1] == UntrustedArtifactError.__name__)


def worker_main(fixture_json: str, folder: str) -> None:
    """A worker process: cases in on stdin (``number seed`` lines), results out, one JSON line
    each, on the stdout it was started with (stray prints go to stderr instead)."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    cap_memory()  # a reader allocating what a damaged file claims fails here, as OTHER
    try:
        worker = Worker(Fixture.from_json(fixture_json), folder)
    except BaseException:
        out.write(json.dumps({"fatal": traceback.format_exc()}) + "\n")
        raise
    out.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        number, seed, *where = line.split()
        run = worker.run_store if where == ["store"] else worker.run
        out.write(json.dumps(run(int(number), int(seed))) + "\n")


if __name__ == "__main__":
    # ``python -m tests._fuzzarchive FIXTURE_JSON FOLDER``: one worker of ``tests._fuzzpool``.
    worker_main(sys.argv[1], sys.argv[2])
