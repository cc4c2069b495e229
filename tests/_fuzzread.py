"""Reading everything the client can read from a store or an archive, and judging what was
read against the reference: the outcomes ``same``, ``clear``, ``accepted`` and ``OTHER``
defined in ``tests/_fuzzarchive.py``.
"""

from __future__ import annotations

import dataclasses
import datetime
import fnmatch
import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

import asyncflow
from asyncflow import AsyncflowError, Flow, UntrustedArtifactError

__all__ = [
    "MISSING",
    "Reading",
    "Verdict",
    "archive_runs",
    "imported_runs",
    "judge",
    "norm",
    "read_manifest",
    "read_store",
]

FLOW = "FuzzFlow"


# --- reading everything ---------------------------------------------------------------------


def norm(value: Any) -> Any:
    """A comparable, type-strict form of a value read (numpy arrays by a digest)."""
    kind = type(value)
    if value is None or kind in (bool, int, str, bytes):
        return (kind.__name__, value)
    if kind is float:
        return ("float", repr(value))
    if kind is complex:
        return ("complex", repr(value))
    if kind in (list, tuple):
        return (kind.__name__, tuple(norm(v) for v in value))
    if kind in (set, frozenset):
        return (kind.__name__, tuple(sorted((norm(v) for v in value), key=repr)))
    if kind is dict:
        return ("dict", tuple((norm(k), norm(v)) for k, v in value.items()))
    if isinstance(value, datetime.datetime):
        return ("datetime", value.isoformat())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        return (kind.__name__, tuple(norm(getattr(value, f.name)) for f in fields))
    module = kind.__module__
    if module == "numpy" or module.startswith("numpy."):
        import hashlib

        import numpy as np

        if isinstance(value, np.ndarray):
            order = "F" if value.flags.f_contiguous and not value.flags.c_contiguous else "C"
            data = hashlib.sha256(value.tobytes(order="A")).hexdigest()
            return ("ndarray", value.dtype.descr, value.shape, order, data)
        return ("npscalar", repr(value.dtype), value.tobytes())
    # Anything else came out of a pickle: the readings compare it as such (and flag it).
    return ("object", kind.__module__, kind.__qualname__)


@dataclass
class Reading:
    """Everything read from one store or archive: key -> one of
    ``("value", normalised)``, ``("error", type name, clear, message)``,
    ``("raw", type name, message, traceback)``."""

    path: str
    also: str = ""  # another file an error may name (the archive, for an import)
    out: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    # (sync or async, name, sha) -> the key under which that value was read.
    seen: dict[tuple[bool, str, str], str] = field(default_factory=dict)

    def first(self, key: str, art: Any) -> bool:
        """Whether to read the value of ``art``: only the first artifact of each (name, sha)
        is read; the others record a reference to it. The blob read is the same for each
        (the artifact rows, which differ, are all read), and reading each value once per
        task made a case ten times slower."""
        seen = (key.startswith("async:"), art.name, art.sha)
        if seen in self.seen:
            self.out[key] = ("same-as", self.seen[seen])
            return False
        self.seen[seen] = key
        return True

    def _error(self, key: str, exc: BaseException) -> None:
        text = str(exc)
        if isinstance(exc, AsyncflowError):
            names = self.path in text or bool(self.also and self.also in text)
            clear = names or isinstance(exc, UntrustedArtifactError)
            self.out[key] = ("error", type(exc).__name__, clear, text[:400])
        else:
            tb = "".join(traceback.format_exception(exc))[-3000:]
            self.out[key] = ("raw", type(exc).__name__, text[:400], tb)

    def get(self, key: str, fn: Callable[[], Any], *, keep: bool = True) -> Any:
        """``fn()``, its normal form recorded under ``key`` (errors always are)."""
        try:
            value = fn()
        except Exception as exc:
            self._error(key, exc)
            return MISSING
        if keep:
            self.out[key] = ("value", norm(value))
        return value

    async def aget(self, key: str, fn: Callable[[], Any], *, keep: bool = True) -> Any:
        """The awaitable form of :meth:`get` (``fn()`` returns an awaitable)."""
        try:
            value = await fn()
        except Exception as exc:
            self._error(key, exc)
            return MISSING
        if keep:
            self.out[key] = ("value", norm(value))
        return value


MISSING: Any = object()

# Which runs to read, and under which key: run -> "Flow/<id in the archive>", or None to skip.
Selector = Callable[[Any], str | None]


def archive_runs(run: Any) -> str | None:
    """Runs of the archive itself, under their own ids."""
    return f"{run.flow_name}/{run.id}"


def imported_runs(uids: set[str]) -> Selector:
    """Runs of a target store that an import returned, under the id they had in the archive."""

    def select(run: Any) -> str | None:
        if run.uid not in uids:
            return None
        origin = run.imported_from
        if not isinstance(origin, dict) or "run_id" not in origin:
            return f"{run.flow_name}/?{run.id}"
        return f"{run.flow_name}/{origin['run_id']}"

    return select


def _read_task(r: Reading, tk: str, task: Any) -> None:
    r.get(f"{tk}:record", lambda: (
        task.step_name, task.index, task.foreach_indices, task.status, task.successful,
        task.exception, task.traceback, task.retry_count, task.origin_task_id,
        task.started_at, task.finished_at,
    ))  # fmt: skip
    r.get(f"{tk}:stdout", lambda: task.stdout)
    r.get(f"{tk}:stderr", lambda: task.stderr)
    r.get(f"{tk}:attempts", lambda: task.attempts)
    arts = r.get(f"{tk}:artifacts", lambda: list(task), keep=False)
    if arts is MISSING:
        return
    r.out[f"{tk}:names"] = ("value", norm([a.name for a in arts]))
    for art in arts:
        key = f"{tk}/{art.name}"
        r.out[f"{key}:meta"] = ("value", norm((art.encoding, art.size, art.sha)))
        if r.first(key, art):
            r.get(key, lambda art=art: art.data)


def read_sync(r: Reading, select: Selector) -> None:
    """Read everything through the synchronous client."""
    r.get("flows", lambda: asyncflow.list_flows(r.path))
    flow = r.get("flow", lambda: Flow(FLOW, r.path), keep=False)
    if flow is MISSING:
        return
    try:
        runs = r.get("runs", flow.runs, keep=False)
        if runs is MISSING:
            return
        chosen = [(select(run), run) for run in runs]
        chosen = [(k, run) for k, run in chosen if k is not None]
        ids = {run.id: k.rsplit("/", 1)[1] for k, run in chosen}
        r.out["runs"] = ("value", norm(sorted(k for k, _ in chosen)))
        for rk, run in chosen:
            r.get(f"{rk}:record", lambda run=run: (
                run.status, run.successful, run.finished, run.created_at, run.finished_at,
                sorted(run.tags), ids.get(run.origin_run_id, run.origin_run_id), run.error,
                run.uid,
            ))  # fmt: skip
            r.get(f"{rk}:graph", lambda run=run: run.graph)
            r.get(f"{rk}:params", lambda run=run: sorted(run.parameters.items()))
            r.get(f"{rk}:source", lambda run=run: run.source)
            steps = r.get(f"{rk}:steps", lambda run=run: list(run), keep=False)
            if steps is MISSING:
                continue
            r.out[f"{rk}:steps"] = ("value", norm([s.name for s in steps]))
            for st in steps:
                for task in st:
                    _read_task(r, f"{rk}/{task.id}", task)
    finally:
        flow.close()


async def read_async(r: Reading, select: Selector) -> None:
    """Read the runs, parameters, logs and every value through the awaitable client (on one
    shared connection: ``async with Flow.aopen(...)``)."""
    opener = Flow.aopen(FLOW, r.path)
    flow = await r.aget("async:flow", opener.__aenter__, keep=False)
    if flow is MISSING:
        return
    try:
        await _read_async_runs(r, flow, select)
    finally:
        await opener.__aexit__(None, None, None)


async def _read_async_runs(r: Reading, flow: Any, select: Selector) -> None:
    runs = await r.aget("async:runs", flow.aruns, keep=False)
    if runs is MISSING:
        return
    for run in runs:
        rk = select(run)
        if rk is None:
            continue
        await r.aget(f"async:{rk}:params", lambda run=run: _sorted_params(run))
        steps = await r.aget(f"async:{rk}:steps", run.asteps, keep=False)
        if steps is MISSING:
            continue
        for st in steps:
            for task in st:
                tk = f"async:{rk}/{task.id}"
                await r.aget(f"{tk}:stdout", task.astdout)
                await r.aget(f"{tk}:attempts", task.aattempts)
                arts = await r.aget(f"{tk}:artifacts", task.aartifacts, keep=False)
                if arts is MISSING:
                    continue
                for art in arts:
                    if r.first(f"{tk}/{art.name}", art):
                        await r.aget(f"{tk}/{art.name}", art.adata)


async def _sorted_params(run: Any) -> list[tuple[str, Any]]:
    return sorted((await run.aparameters()).items())


def read_store(
    path: str, select: Selector = archive_runs, also: str = "", *, aread: bool = True
) -> Reading:
    """Read everything the client can read from ``path`` (see the module doc).

    :param aread: read it all again through the awaitable API.
    """
    r = Reading(os.path.abspath(path), also=os.path.abspath(also) if also else "")
    read_sync(r, select)
    if aread:
        anyio.run(read_async, r, select)
    return r


def read_manifest(path: str) -> Reading:
    """``read_archive(path, verify=True)``, every field but the path."""
    r = Reading(os.path.abspath(path))

    def fields() -> dict[str, Any]:
        found = dataclasses.asdict(asyncflow.read_archive(path, verify=True))
        del found["path"]
        return found

    r.get("manifest", fields)
    return r


# --- judging a reading against the reference ------------------------------------------------


@dataclass
class Verdict:
    """The outcome of one operation: ``same``, ``clear``, ``accepted`` or ``OTHER``."""

    outcome: str
    errors: list[str] = field(default_factory=list)  # the types of the new errors
    detail: str = ""


def judge(ref: Reading, cur: Reading, scope: tuple[str, ...] = ()) -> Verdict:
    """Compare ``cur`` with the reference (see the module doc for the rules).

    :param scope: ``fnmatch`` patterns of the keys whose readings may differ (an accepted
        attacker edit); an ``async:`` key matches as its sync twin.
    """
    problems: list[str] = []
    new_errors: list[str] = []
    accepted: list[str] = []
    for key, got in cur.out.items():
        want = ref.out.get(key)
        if got[0] == "raw":
            problems.append(f"{key}: raw {got[1]}: {got[2]}\n{got[3]}")
            continue
        if got[0] == "value" and _is_pickle(cur, key):
            problems.append(f"{key}: a pickled value loaded: {got[1]}")
            continue
        if want is not None and _same(_follow(ref, want), _follow(cur, got)):
            continue
        got = _follow(cur, got)
        if got[0] == "error":
            if not got[2]:
                problems.append(f"{key}: {got[1]} does not name the file: {got[3]}")
            else:
                new_errors.append(got[1])
            continue
        if any(_within(key, prefix) for prefix in scope):
            accepted.append(key)
            continue
        if key.endswith(":meta") and _value_failed(cur, key.removesuffix(":meta")):
            continue  # the listing is records only; reading the value is what checks bytes
        problems.append(f"{key}: differs without an error: {_short(got)} (expected {_short(want)})")
    missing = [
        key for key in ref.out if key not in cur.out and not any(_within(key, p) for p in scope)
    ]
    if missing and not new_errors and not problems:
        problems.append(f"readings missing without an error: {', '.join(missing[:5])}")
    if problems:
        return Verdict("OTHER", new_errors, "\n".join(problems[:5]))
    if new_errors:
        first = next(g for g in cur.out.values() if g[0] == "error" and g[1] == new_errors[0])
        return Verdict("clear", new_errors, first[3])
    if accepted:
        return Verdict("accepted", [], ", ".join(accepted[:5]))
    return Verdict("same")


def _follow(r: Reading, reading: tuple[Any, ...]) -> tuple[Any, ...]:
    """A value read once for several artifacts: the reading it refers to."""
    if reading[0] == "same-as":
        return r.out.get(reading[1], ("missing",))
    return reading


def _value_failed(r: Reading, key: str) -> bool:
    got = r.out.get(key)
    if got is not None and got[0] == "same-as":
        got = r.out.get(got[1])
    return got is not None and got[0] == "error" and bool(got[2])


def _is_pickle(r: Reading, key: str) -> bool:
    meta = r.out.get(key.removeprefix("async:") + ":meta")
    return meta is not None and meta[0] == "value" and meta[1][1][0] == ("str", "pickle")


def _same(want: tuple[Any, ...], got: tuple[Any, ...]) -> bool:
    if want[0] == "error" and got[0] == "error":
        return bool(want[1] == got[1])
    return want == got


def _within(key: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(key.removeprefix("async:"), pattern)


def _short(reading: tuple[Any, ...] | None) -> str:
    return "nothing" if reading is None else repr(reading)[:200]
