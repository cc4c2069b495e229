"""Signing pickle blobs, checking them before they are unpickled, and trusting runs.

The model is in ``_trust``: a pickle blob may be unpickled only if (a) its ``blobs.mac``
verifies under this user's key, (b) its stored bytes hash to its sha, and, for the client,
(c) the run it is read through is trusted (``runs.trusted = 1``). This module holds the
store side of all three: the writer signs every pickle blob it stores (:func:`sign_blobs`),
readers ask :func:`blob_problem` and :func:`run_trust`, and :func:`trust_runs` checks every
pickle blob of some runs against its hash, then signs them and marks the runs trusted.

msgpack and numpy blobs need none of this: their decoders build nothing but plain data.
"""

from __future__ import annotations

import enum
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .._codecs import Encoded
from .._errors import StoreError
from ._blobs import RawBlob, insert_new_blob, settle_blobs, stored_sha
from ._db import write_once
from ._format import ARCHIVE_KEY
from ._plans import BATCH, Plan, Query
from ._trust import TrustKey, blob_sha

__all__ = [
    "PICKLE",
    "Problem",
    "RunTrust",
    "blob_problem",
    "pickle_macs",
    "run_trust",
    "sign_blobs",
    "sign_stored",
    "trust_runs",
    "trust_runs_in_store",
]

#: The codec id of the only encoding whose decoding runs code.
PICKLE = "pickle"


class Problem(enum.Enum):
    """Why a pickle blob must not be unpickled; the value completes "..., and <value>"."""

    UNSIGNED = "its signature is missing or was not made with your key"
    ALTERED = "its stored bytes do not match their hash: they were damaged or edited"


def blob_problem(raw: RawBlob, key: TrustKey, *, signed: bool = True) -> Problem | None:
    """Whether the pickle blob ``raw`` may not be unpickled, and why. Blocking (hashes it).

    :param signed: require (a), a mac by ``key``; False checks (b), the hash, alone (for a
        run opened with ``trust=True``).
    """
    if signed and not key.verify(raw.sha, raw.mac):
        return Problem.UNSIGNED
    with memoryview(raw.payload) as view:
        intact = blob_sha(raw.encoding, raw.meta, view) == raw.sha
    return None if intact else Problem.ALTERED


# --- reading: the trust of a run, the signatures of blobs ------------------------------------


@dataclass(frozen=True, slots=True)
class RunTrust:
    """What the store says of one run's trust, read when one of its pickles is loaded.

    :param trusted: ``runs.trusted``: written here by this user, or trusted since.
    :param imported: the run was imported from an archive (``runs.imported`` is set).
    :param archive: the file read is a run archive, not a store.
    """

    trusted: bool
    imported: bool
    archive: bool


RUN_TRUST = (
    "SELECT trusted, imported IS NOT NULL, "
    "EXISTS (SELECT 1 FROM store_info WHERE key = ?) FROM runs WHERE id = ?"
)
PICKLE_MACS = "SELECT sha, mac FROM blobs WHERE encoding = 'pickle' AND sha IN ({marks})"


def run_trust(run_id: int) -> Plan[RunTrust]:
    """The trust of run ``run_id`` (untrusted if the run is gone)."""
    rows = yield Query(RUN_TRUST, (ARCHIVE_KEY, run_id))
    if not rows:
        return RunTrust(False, False, False)
    trusted, imported, archive = rows[0]
    return RunTrust(bool(trusted), bool(imported), bool(archive))


def pickle_macs(shas: Sequence[bytes]) -> Plan[dict[bytes, bytes | None]]:
    """Of the blobs ``shas``, the pickle ones and their macs (no payload is read)."""
    unique = list(dict.fromkeys(shas))
    out: dict[bytes, bytes | None] = {}
    for start in range(0, len(unique), BATCH):
        batch = tuple(unique[start : start + BATCH])
        rows = yield Query(PICKLE_MACS.format(marks=",".join("?" * len(batch))), batch)
        for sha, mac in rows:
            out[bytes(sha)] = None if mac is None else bytes(mac)
    return out


# --- writing: the writer's signatures ------------------------------------------------------

_SET_MAC = "UPDATE main.blobs SET mac = ? WHERE sha = ? AND mac IS NOT ?"


def sign_blobs(conn: sqlite3.Connection, encs: Iterable[Encoded], key: TrustKey) -> None:
    """Store the pickle blobs ``encs`` and sign them with ``key``.

    A row already stored under one of their shas is kept only if its bytes hash to that sha
    (see :func:`~asyncflow._store._blobs.settle_blobs`); then it is signed too, even if it
    had no mac or another key's (the same bytes came in through an import): this user has
    just produced those exact bytes. A row that does not hash to its sha is replaced by ours
    first, so no row is ever signed unchecked. The caller holds the transaction.
    """
    encs = list(encs)
    for enc in settle_blobs(conn, encs):
        insert_new_blob(conn, enc)
    sign_stored(conn, [enc.sha for enc in encs], key)


def sign_stored(conn: sqlite3.Connection, shas: Iterable[bytes], key: TrustKey) -> None:
    """Sign the pickle blobs ``shas``, which the caller has written, or checked with
    :func:`~asyncflow._store._blobs.settle_blobs`, in its current transaction (never a row
    read but unchecked: the mac says "these bytes are mine")."""
    macs = {sha: key.sign(sha) for sha in shas}
    conn.executemany(_SET_MAC, [(mac, sha, mac) for sha, mac in macs.items()])


# --- trusting runs ---------------------------------------------------------------------------

_PICKLES_OF_RUNS = (
    "SELECT b.sha, b.meta, b.size, b.nchunks, r.flow, a.run_id, t.step, a.task_id, a.name "
    "FROM main.artifacts AS a JOIN main.blobs AS b ON b.sha = a.sha "
    "JOIN main.runs AS r ON r.id = a.run_id "
    "LEFT JOIN main.tasks AS t ON t.run_id = a.run_id AND t.id = a.task_id "
    "WHERE b.encoding = 'pickle' AND a.run_id IN ({marks}) "
    "UNION ALL "
    "SELECT b.sha, b.meta, b.size, b.nchunks, r.flow, p.run_id, NULL, NULL, p.name "
    "FROM main.run_params AS p JOIN main.blobs AS b ON b.sha = p.sha "
    "JOIN main.runs AS r ON r.id = p.run_id "
    "WHERE b.encoding = 'pickle' AND p.run_id IN ({marks})"
)


def _label(flow: str, run_id: int, step: str | None, task_id: int | None, name: str) -> str:
    if task_id is None:
        return f"parameter {name!r} of run {flow}/{run_id}"
    return f"artifact {name!r} of task {flow}/{run_id}/{step or '?'}/{task_id}"


def trust_runs(conn: sqlite3.Connection, run_ids: Sequence[int], key: TrustKey, path: str) -> int:
    """Trust runs: check every pickle blob they refer to (artifacts and parameters) against
    its hash, then sign each with ``key`` and set ``runs.trusted = 1``. Blocking.

    Runs inside the caller's write transaction on ``conn`` (a store's writer connection;
    the tables read are those of ``main``). Nothing is written unless every blob checks out.

    :param path: the store file, for error messages.
    :returns: how many distinct pickle blobs were checked and signed.
    :raises StoreError: a blob's bytes do not match its hash (the message names the blob and
        an artifact or parameter that refers to it); nothing was changed.
    """
    ids = list(dict.fromkeys(run_ids))
    found: dict[bytes, tuple[bytes | None, int, int, str]] = {}
    for start in range(0, len(ids), BATCH):
        batch = tuple(ids[start : start + BATCH])
        marks = ",".join("?" * len(batch))
        rows = conn.execute(_PICKLES_OF_RUNS.format(marks=marks), batch + batch).fetchall()
        for sha, meta, size, nchunks, flow, run_id, step, task_id, name in rows:
            if bytes(sha) not in found:
                label = _label(flow, run_id, step, task_id, name)
                found[bytes(sha)] = (
                    None if meta is None else bytes(meta),
                    int(size),
                    int(nchunks),
                    label,
                )
    # Every blob is checked before anything is signed: a failure leaves the store as it was.
    for sha, (meta, size, nchunks, label) in sorted(found.items(), key=lambda i: i[1][3]):
        if stored_sha(conn, sha, PICKLE, meta, size, nchunks) != sha:
            raise StoreError(
                f"cannot trust {label}: the stored bytes of its value {sha.hex()[:16]}... in "
                f"the store file {path!r} do not match their hash, so they were damaged or "
                "edited; nothing was trusted. Restore the store from a copy, or ask the run's "
                "author for a fresh copy of the run.",
                path,
            )
    conn.executemany(
        "UPDATE main.blobs SET mac = ? WHERE sha = ?", [(key.sign(sha), sha) for sha in found]
    )
    conn.executemany("UPDATE main.runs SET trusted = 1 WHERE id = ?", [(i,) for i in ids])
    return len(found)


def trust_runs_in_store(path: str, run_ids: Sequence[int], key: TrustKey) -> int:
    """:func:`trust_runs` in one write transaction of its own on the store at ``path``.
    Blocking: the awaitable forms run it in a worker thread.

    :raises StoreError: the key or the store cannot be used, or a blob is damaged (then
        nothing was changed).
    """
    key.key(create=True)  # a key that cannot be made fails here, before the store is opened
    return write_once(path, lambda conn: trust_runs(conn, run_ids, key, path))
