"""Safe loading in the client: a pickled value loads only from a trusted run, and intact.

Unpickling runs code. So before the client decodes a ``pickle`` blob it asks three things
(see ``_store._trust``): (a) does the blob's mac verify under this user's key, (b) do its
bytes hash to its sha, (c) is the run it is read through trusted (``runs.trusted``: written
here by this user, or trusted since with ``run.trust()`` / ``asyncflow trust``)? A Flow
opened with ``trust=True`` waives (a) and (c); (b) always holds. msgpack and numpy values
are never asked: their decoders build plain data only.

The run's trust is read when one of its pickles is about to load (one small query, pickles
only), so a run trusted a moment ago loads at once, through objects read before.

The same trust bounds what decoding a large msgpack value of a run you do not trust may
build (:func:`decode_budget`): crafted msgpack of a megabyte of empty lists builds ~64 MB of
Python lists, and such a value passes every check of an archive, being perfectly valid.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio.to_thread

from .. import _codecs
from .._errors import StoreError, UntrustedArtifactError, store_option
from .._store._blobs import RawBlob
from .._store._signing import (
    PICKLE,
    Problem,
    RunTrust,
    blob_problem,
    run_trust,
    trust_runs_in_store,
)
from .._store._trust import TrustKey
from ._handle import StoreHandle

__all__ = [
    "BUDGET_PER_BYTE",
    "BUDGET_SLACK",
    "Gate",
    "agate",
    "atrust_run",
    "budget_refusal",
    "decode_budget",
    "gate",
    "refusal",
    "trust_run",
]

# The rule is the codecs' (the runtime applies it too); named here for the messages.
BUDGET_PER_BYTE = _codecs.BUDGET_PER_BYTE
BUDGET_SLACK = _codecs.BUDGET_SLACK
MSGPACK = "msgpack"
# Below BUDGET_SLACK / 128 bytes no msgpack value can pass its budget (containers cost at
# most ~112 bytes per payload byte: a chain of one-entry maps), so its run's trust is not
# even read.
_FLOOR_RATIO = 128


@dataclass(frozen=True, slots=True)
class Gate:
    """What deciding on one pickled value needs; made just before it is decoded.

    :param flow: the flow's name.
    :param run_id: the run the value is read through.
    :param name: the artifact's or parameter's name.
    :param pathspec: the task (artifact) or run (parameter) it is read through.
    :param state: what the store says of the run's trust.
    :param waived: the Flow was opened with ``trust=True``.
    :param key: this user's signing key.
    :param path: the store (or archive) file.
    """

    flow: str
    run_id: int
    name: str
    pathspec: str
    state: RunTrust
    waived: bool
    key: TrustKey
    path: str


def _make(
    handle: StoreHandle, state: RunTrust, flow: str, run_id: int, name: str, pathspec: str
) -> Gate:
    return Gate(flow, run_id, name, pathspec, state, handle.trust, handle.key, handle.path)


def _gated(raw: RawBlob) -> bool:
    return raw.encoding == PICKLE or (
        raw.encoding == MSGPACK and raw.size >= BUDGET_SLACK // _FLOOR_RATIO
    )


def gate(
    handle: StoreHandle, raw: RawBlob, flow: str, run_id: int, name: str, pathspec: str
) -> Gate | None:
    """The :class:`Gate` for ``raw`` if it is a pickle or a msgpack value large enough for
    :func:`decode_budget` to matter (reads the run's trust), else None.

    :raises StoreError: the store cannot be read.
    """
    if not _gated(raw):
        return None
    return _make(handle, handle.run(run_trust(run_id)), flow, run_id, name, pathspec)


async def agate(
    handle: StoreHandle, raw: RawBlob, flow: str, run_id: int, name: str, pathspec: str
) -> Gate | None:
    """The awaitable twin of :func:`gate`.

    :raises StoreError: the store cannot be read.
    """
    if not _gated(raw):
        return None
    return _make(handle, await handle.arun(run_trust(run_id)), flow, run_id, name, pathspec)


def refusal(raw: RawBlob, what: str, gate: Gate | None) -> UntrustedArtifactError | None:
    """Why the client must not unpickle ``raw``, as the error to raise; None if it may.

    Non-pickle blobs always may. Blocking: verifies a mac and hashes the payload.

    :param what: the value, for the message: ``"artifact 'x' of task F/1/s/2"``.
    :param gate: from :func:`gate`; None for a pickle refuses it (nothing vouches for it).
    """
    if raw.encoding != PICKLE:
        return None
    if gate is None:
        return UntrustedArtifactError(
            f"cannot load {what}: it is pickled and nothing vouches for it; unpickling runs "
            "code. Read it through its run (Flow(name, store)[run_id]).",
            what,
            "",
        )
    run = f"{gate.flow}/{gate.run_id}"
    trust_it = (
        f"If you trust the run's author, trust it with `asyncflow trust {run}"
        f"{store_option(gate.path)}` (or "
        "run.trust()), then read it again."
    )
    why = fix = ""
    state = gate.state
    if gate.waived:
        pass
    elif state.archive:
        why = f"run {run} is read straight from the run archive {gate.path!r}"
        fix = (
            f"If you trust the archive's author, open it with Flow({gate.flow!r}, "
            f"store={gate.path!r}, trust=True), or import it with `asyncflow import "
            f"{gate.path} --trust`."
        )
    elif not state.trusted:
        if state.imported:
            why = f"run {run} was imported from an archive and is not trusted yet"
        else:
            why = (
                f"run {run} is not marked trusted (you did not write it on this machine, or "
                "an asyncflow that did not sign pickles yet stored it)"
            )
        fix = trust_it
    elif not gate.key.verify(raw.sha, raw.mac):
        why, fix = f"{Problem.UNSIGNED.value} ({gate.key.path!r})", trust_it
    # Hashed here, at the read that unpickles it, whatever else checked it: the store's own
    # word (``state.archive``) must not stand in for the check, as the file may be edited.
    if not why and blob_problem(raw, gate.key, signed=False) is not None:
        why = Problem.ALTERED.value
        fix = "Restore the store file from a copy, or run the flow again."
    if not why:
        return None
    return UntrustedArtifactError(
        f"cannot load {what} ({raw.size} bytes of pickle): unpickling runs code, and {why}. {fix}",
        gate.name,
        gate.pathspec,
    )


def decode_budget(raw: RawBlob, gate: Gate | None) -> int | None:
    """The most bytes of Python containers decoding ``raw`` may build, or None for no limit:
    :data:`BUDGET_PER_BYTE` per payload byte plus :data:`BUDGET_SLACK` for a msgpack value
    read through a run that is not trusted (read from an archive in place, imported and not
    trusted since, or not marked trusted in its store) unless its Flow was opened with
    ``trust=True``; no limit for the runs you trust, so your own values always load."""
    if raw.encoding != MSGPACK or gate is None or gate.waived:
        return None
    if gate.state.trusted and not gate.state.archive:
        return None
    return BUDGET_PER_BYTE * raw.size + BUDGET_SLACK


def budget_refusal(raw: RawBlob, what: str, gate: Gate, budget: int) -> StoreError:
    """The error for a msgpack value whose decoding passed ``budget`` (see
    :func:`decode_budget`)."""
    run = f"{gate.flow}/{gate.run_id}"
    if gate.state.archive:
        where = f"run {run} is read straight from the run archive {gate.path!r}"
        fix = (
            f"If you trust the archive's author, open it with Flow({gate.flow!r}, "
            f"store={gate.path!r}, trust=True), or import it with `asyncflow import "
            f"{gate.path} --trust`, then read it again."
        )
    else:
        where = f"run {run} is not trusted"
        fix = (
            f"If you trust the run's author, trust it with `asyncflow trust {run}"
            f"{store_option(gate.path)}` (or "
            "run.trust()), then read it again."
        )
    return StoreError(
        f"cannot load {what} ({raw.size} bytes of msgpack): decoding it builds more than "
        f"{budget} bytes of Python lists, maps and sets ({BUDGET_PER_BYTE} per stored byte "
        f"+ {BUDGET_SLACK >> 20} MiB), the limit for a value whose {where}: crafted to "
        f"exhaust memory, or an unusually nested value. {fix}",
        gate.path,
    )


# --- trusting a run ------------------------------------------------------------------------


def _refuse_archive(handle: StoreHandle, flow: str, run_id: int) -> None:
    run = f"{flow}/{run_id}"
    path = handle.path
    raise StoreError(
        f"cannot trust run {run}: it is in the run archive {path!r}, which is read-only; "
        f"read its pickled values with Flow({flow!r}, store={path!r}, trust=True), or import "
        f"it trusted with `asyncflow import {path} --trust` "
        "(asyncflow.import_archive(..., trust=True)).",
        path,
    )


def trust_run(handle: StoreHandle, flow: str, run_id: int) -> int:
    """Check every pickled value of run ``run_id`` against its hash, sign each with this
    user's key and mark the run trusted, in one transaction. Blocking.

    :returns: how many pickled values were checked and signed.
    :raises StoreError: the run is in an archive (read-only), a value's bytes do not match
        their hash (nothing is changed then), or the store or the key cannot be used.
    """
    if handle.run(run_trust(run_id)).archive:
        _refuse_archive(handle, flow, run_id)
    return trust_runs_in_store(handle.path, [run_id], handle.key)


async def atrust_run(handle: StoreHandle, flow: str, run_id: int) -> int:
    """The awaitable twin of :func:`trust_run` (the writing runs in a worker thread).

    :raises StoreError: as :func:`trust_run`.
    """
    if (await handle.arun(run_trust(run_id))).archive:
        _refuse_archive(handle, flow, run_id)
    return await anyio.to_thread.run_sync(trust_runs_in_store, handle.path, [run_id], handle.key)
