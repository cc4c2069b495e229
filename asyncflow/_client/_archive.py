"""Moving runs between stores: export to a run archive, import from one, read its manifest.

An archive is one SQLite file in the store format holding exactly the exported runs and the
values they refer to, plus a manifest. ``Flow(name, store=ARCHIVE)`` reads one directly,
read-only; :func:`import_archive` copies its runs into a store, where they can be resumed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import anyio.to_thread

from .._errors import StoreError
from .._store import _archive as arc
from .._store import _manifest as mf
from .._store._paths import resolve_store_path
from ._flow import Flow, StorePath
from ._run import Run
from ._task import utc

__all__ = [
    "ArchiveManifest",
    "aexport_runs",
    "aimport_archive",
    "aread_archive",
    "export_runs",
    "import_archive",
    "import_runs",
    "read_archive",
]

PathLike = str | os.PathLike[str]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ArchiveManifest:
    """What a run archive says of itself (its manifest), as :func:`read_archive` reads it.

    :param path: the archive file.
    :param asyncflow_version: the asyncflow version that exported it.
    :param schema_version: its store schema version.
    :param exported_at: when it was exported (UTC).
    :param host: the machine it was exported on.
    :param user: the user who exported it.
    :param source: the store it was exported from (a path on that machine).
    :param runs: the pathspecs (``Flow/id``) of its runs, as numbered in that store.
    :param blobs: how many stored values it holds.
    :param payload_bytes: the total size of those values.
    :param digest: ``sha256:<hex>`` over its content (checked on open and import).
    """

    path: str
    asyncflow_version: str
    schema_version: int
    exported_at: datetime
    host: str
    user: str
    source: str
    runs: tuple[str, ...]
    blobs: int
    payload_bytes: int
    digest: str

    @classmethod
    def _from(cls, path: str, manifest: dict[str, Any]) -> ArchiveManifest:
        by = manifest.get("exported_by")
        by = by if isinstance(by, dict) else {}
        runs = [r for r in manifest.get("runs", ()) if isinstance(r, dict)]
        return cls(
            path=path,
            asyncflow_version=str(manifest.get("asyncflow_version", "")),
            schema_version=int(manifest.get("schema_version", 0)),
            exported_at=utc(float(manifest.get("exported_at", 0.0))),
            host=str(by.get("host", "")),
            user=str(by.get("user", "")),
            source=str(by.get("store", "")),
            runs=tuple(f"{r.get('flow')}/{r.get('id')}" for r in runs),
            blobs=int(manifest.get("blobs", 0)),
            payload_bytes=int(manifest.get("payload_bytes", 0)),
            digest=str(manifest["digest"]),
        )


def _same_store(runs: Sequence[Run]) -> str:
    stores = {run._handle.path for run in runs}
    if len(stores) > 1:
        raise StoreError(
            "cannot export runs of several stores into one archive ("
            + ", ".join(sorted(stores))
            + "); export each store's runs into an archive of its own.",
        )
    return stores.pop()


def export_runs(path: PathLike, runs: Iterable[Run], *, overwrite: bool = False) -> ArchiveManifest:
    """Write ``runs`` (of one store) into a new run archive at ``path``.

    The archive holds the runs' records (tasks, attempts, logs, parameters, tags, graph, flow
    source) and every value they refer to, nothing else, plus a manifest. Values are copied
    by SQLite from file to file, never through Python memory, and the file appears at
    ``path`` only once complete.

    :param overwrite: replace a file already at ``path``.
    :raises StoreError: no runs, runs of several stores, a run still running, ``path``
        exists (without ``overwrite``) or a file cannot be read or written.
    """
    return _export(path, list(runs), overwrite, None)


def _export(
    path: PathLike, chosen: list[Run], overwrite: bool, stop: threading.Event | None
) -> ArchiveManifest:
    if not chosen:
        raise StoreError("nothing to export: pass at least one run.")
    store = _same_store(chosen)
    dest = os.path.abspath(os.fspath(path))
    manifest = arc.export_archive(
        store,
        dest,
        [(run.flow_name, int(run.id)) for run in chosen],
        overwrite=overwrite,
        stop=stop,
    )
    return ArchiveManifest._from(dest, manifest)


async def aexport_runs(
    path: PathLike, runs: Iterable[Run], *, overwrite: bool = False
) -> ArchiveManifest:
    """The awaitable twin of :func:`export_runs`. The copy runs in a worker thread; when the
    caller is cancelled, it is stopped, nothing is left at ``path``, and the cancellation
    goes on."""
    chosen = list(runs)
    return await _in_thread(lambda stop: _export(path, chosen, overwrite, stop))


def import_archive(path: PathLike, store: StorePath = None, trust: bool = False) -> list[Run]:
    """Copy every run of the archive at ``path`` into ``store``; return them as stored there.

    All or nothing: the archive's records and the hash of every value are checked before
    anything is written, and the copy is one transaction. Imported runs get new ids in the
    target store (the id they had is in ``run.imported_from``); a run the store already
    holds (imported before, or exported from it) is not copied again, and is returned as it
    is. Values the store already has are not stored twice.

    :param store: the target store (created if missing); None means the default store
        (``$ASYNCFLOW_STORE``, else the nearest ``asyncflow.db`` in the current directory or
        a parent, else ``asyncflow.db`` in the current directory).
    :param trust: trust the imported runs, so their pickled values load (only for archives
        from people you trust: unpickling runs code). Without it, pickled values are refused
        with :class:`~asyncflow.UntrustedArtifactError` until you trust the run.
    :raises StoreFormatError: the file is not a run archive, or is from a newer asyncflow.
    :raises StoreError: the archive is damaged or was edited, or a file cannot be used.
    """
    return [run for _, run in import_runs(path, store, trust)]


def import_runs(
    path: PathLike,
    store: StorePath = None,
    trust: bool = False,
    stop: threading.Event | None = None,
) -> list[tuple[arc.ImportedRun, Run]]:
    """:func:`import_archive`, with what happened to each run (for the command line)."""
    archive = os.path.abspath(os.fspath(path))
    target = os.path.abspath(resolve_store_path(store))
    sign = _signer(target) if trust else None
    done = arc.import_archive(archive, target, sign=sign, stop=stop)
    out: list[tuple[arc.ImportedRun, Run]] = []
    flows: dict[str, Flow] = {}
    for item in done:
        flow = flows.get(item.flow)
        if flow is None:
            flow = flows[item.flow] = Flow(item.flow, target)
        out.append((item, flow[item.id]))
    return out


async def aimport_archive(
    path: PathLike, store: StorePath = None, trust: bool = False
) -> list[Run]:
    """The awaitable twin of :func:`import_archive`. The work runs in a worker thread; when
    the caller is cancelled, it is stopped and rolled back (the store is left as it was),
    and the cancellation goes on."""
    done = await _in_thread(lambda stop: import_runs(path, store, trust, stop))
    return [run for _, run in done]


def read_archive(path: PathLike, *, verify: bool = False) -> ArchiveManifest:
    """The manifest of the run archive at ``path``.

    :param verify: also check every record and every value's hash (reads the whole file).
    :raises StoreFormatError: the file is not a run archive.
    :raises StoreError: the archive is damaged or was edited.
    """
    archive = os.path.abspath(os.fspath(path))
    if verify:
        return ArchiveManifest._from(archive, mf.verify_archive_file(archive))
    conn = mf.open_archive(archive)
    try:
        return ArchiveManifest._from(archive, mf.read_manifest(conn, archive))
    finally:
        conn.close()


async def aread_archive(path: PathLike, *, verify: bool = False) -> ArchiveManifest:
    """The awaitable twin of :func:`read_archive`."""
    return await anyio.to_thread.run_sync(lambda: read_archive(path, verify=verify))


async def _in_thread(work: Callable[[threading.Event], T]) -> T:
    """Run ``work(stop)`` in a worker thread; if we are cancelled meanwhile, set ``stop``
    (the SQLite statements running then abandon their work and roll back), wait for the
    thread to end, and let the cancellation through."""
    stop = threading.Event()
    done = anyio.Event()
    outcome: list[Any] = []

    async def runner() -> None:
        with anyio.CancelScope(shield=True):
            try:
                outcome.append(await anyio.to_thread.run_sync(work, stop))
            except BaseException as exc:  # handed to the caller below
                outcome.append(exc)
                raise_later.append(True)
            finally:
                done.set()

    raise_later: list[bool] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(runner)
        try:
            await done.wait()
        except anyio.get_cancelled_exc_class():
            stop.set()
            with anyio.CancelScope(shield=True):
                await done.wait()
            raise
    if raise_later:
        raise outcome[0]
    result: T = outcome[0]
    return result


def _signer(target: str) -> Any:
    from .._store._signing import trust_runs
    from .._store._trust import TrustKey

    key = TrustKey()

    def sign(conn: Any, run_ids: list[int]) -> None:
        trust_runs(conn, run_ids, key, target)

    return sign
