"""What runs on a Dask worker: one task, given the run's pack and the values shipped to it.

:func:`run_task` is what the Dask executor submits (by module path: every Dask worker must be
able to import asyncflow). Its arguments are Dask futures resolved by the worker: the run's
:class:`~.._jobs.RunPack` and one :class:`ShippedBlob` per value the task may read, each
scattered once per run by the coordinator, so Dask moves a value to a worker at most once and
keeps it there while the run lasts. The worker process keeps each run's context (flow class,
graph, reader) between tasks in a module-level :class:`~.._worker.WorkerRuns`.

A task reads shipped values first. A value that was not shipped (a read the step's source
does not show, as ``getattr(self, name)``) is read from the store file when this worker can
open it (a cluster on the coordinator's machine), else the read fails naming the artifact.
Only the coordinator's checks vouch for a pickle: a shipped pickle it could not vouch for
travels unvouched and is checked here again (and, without the user's key, refused).
"""

from __future__ import annotations

import os
import pickle
import threading
from collections import Counter
from typing import Any

import numpy as np

from ..._codecs import payload_buffer
from ..._errors import StoreError
from ..._store._blobs import RawBlob
from ..._store._reader import BlobReader
from .._jobs import Job, RemoteError, Reply, RunPack
from .._worker import WorkerRuns, run_job, setup_failed

__all__ = ["ARRIVALS", "ShippedBlob", "ShippingReader", "run_task"]


class ShippedBlob:
    """A blob as it travels to Dask workers: its stored form, the payload as a numpy byte
    array (Dask moves it without copies) and the coordinator's verdict (``vouched``)."""

    __slots__ = ("encoding", "meta", "payload", "sha", "vouched")

    def __init__(
        self, sha: bytes, encoding: str, meta: bytes | None, payload: Any, vouched: bool
    ) -> None:
        self.sha = sha
        self.encoding = encoding
        self.meta = meta
        self.payload = payload
        self.vouched = vouched

    @classmethod
    def of(cls, raw: RawBlob) -> ShippedBlob:
        """The travelling form of ``raw`` (no copy of its payload)."""
        payload = (
            raw.payload if isinstance(raw.payload, bytes) else np.frombuffer(raw.payload, np.uint8)
        )
        return cls(raw.sha, raw.encoding, raw.meta, payload, raw.vouched)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_arrived, (self.sha, self.encoding, self.meta, self.payload, self.vouched))

    def __sizeof__(self) -> int:
        # What Dask counts for this value (its transfer costs and memory limits).
        return self.size + 200

    @property
    def size(self) -> int:
        """Payload length in bytes."""
        return len(self.payload) if isinstance(self.payload, bytes) else int(self.payload.nbytes)

    def fresh(self) -> RawBlob:
        """A private copy for one read (decoding may take the buffer over; other tasks of
        this worker read the same shipped value)."""
        if isinstance(self.payload, bytes):
            return RawBlob(self.sha, self.encoding, self.meta, self.payload, vouched=self.vouched)
        buf = payload_buffer(self.size)
        memoryview(buf)[:] = memoryview(self.payload).cast("B")
        return RawBlob(self.sha, self.encoding, self.meta, buf, vouched=self.vouched)


#: How many times each value (by sha) reached this process: a worker rebuilds a value once
#: each time it receives it, scattered or fetched from another worker. For tests, benchmarks.
ARRIVALS: Counter[bytes] = Counter()


def _arrived(
    sha: bytes, encoding: str, meta: bytes | None, payload: Any, vouched: bool
) -> ShippedBlob:
    ARRIVALS[sha] += 1
    return ShippedBlob(sha, encoding, meta, payload, vouched)


# What the task running in this thread was given: shipped values, and what each sha is called.
_task = threading.local()


class ShippingReader(BlobReader):
    """A worker's reader: the task's shipped values first, then the store file if this
    worker can open it (see the module doc)."""

    def read_raw(self, sha: bytes) -> RawBlob:
        """One blob's stored form: shipped, else from the file. Blocking."""
        shipped: dict[bytes, ShippedBlob] = getattr(_task, "blobs", {})
        blob = shipped.get(sha)
        if blob is not None:
            return blob.fresh()
        self._reachable([sha])
        return super().read_raw(sha)

    def read_raw_many(self, shas: list[bytes], *, check: bool = False) -> dict[bytes, RawBlob]:
        """Many blobs' stored forms: shipped, else from the file. Blocking."""
        shipped: dict[bytes, ShippedBlob] = getattr(_task, "blobs", {})
        out = {sha: shipped[sha].fresh() for sha in shas if sha in shipped}
        rest = [sha for sha in shas if sha not in out]
        if rest:
            self._reachable(rest)
            out.update(super().read_raw_many(rest, check=check))
        return out

    def _reachable(self, shas: list[bytes]) -> None:
        # The file is there (a worker on the coordinator's machine), or the read fails here.
        if os.path.exists(self.path):
            return
        names: dict[bytes, list[str]] = getattr(_task, "names", {})
        what = ", ".join(w for sha in shas for w in names.get(sha, [f"the value {sha.hex()[:12]}"]))
        raise StoreError(
            f"task {getattr(_task, 'pathspec', '?')} on Dask worker {_worker_name()} cannot "
            f"read {what}: it was not shipped with the task (the step's source does not read "
            f"it as self.<name>), and this worker cannot open the store file {self.path!r}. "
            "Read it as self.<name> in the step's source, so that it is shipped, or run the "
            "Dask workers on a machine that sees the store file at that path.",
            self.path,
        )


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except Exception:  # not in a Dask worker (a direct call)
        return f"(pid {os.getpid()})"


_runs = WorkerRuns()
_runs_lock = threading.Lock()
_installed = False


def _names(pack: RunPack, job: Job) -> dict[bytes, list[str]]:
    # What each value this task may read is called, for messages.
    names: dict[bytes, list[str]] = {}
    for attr, sha in pack.params.items():
        names.setdefault(sha, []).append(f"parameter {attr!r}")
    for name, sha in job.base.items():
        if name not in pack.params:
            names.setdefault(sha, []).append(f"artifact {name!r}")
    for parent in job.inputs or ():
        for name, sha in parent.refs.items():
            if name not in pack.params:
                label = f"artifact {name!r} of input {parent.step}/{parent.task_id}"
                names.setdefault(sha, []).append(label)
    return {sha: list(dict.fromkeys(n)) for sha, n in names.items()}


def run_task(
    pack: RunPack, job: Job, blobs: dict[bytes, ShippedBlob], pathspec: str
) -> tuple[bytes, list[Any]]:
    """Run one attempt of ``job`` in this Dask worker.

    :returns: the pickled :class:`~.._jobs.Reply` and its payload buffers (numpy byte arrays
        or bytes, which Dask sends back without copies).
    """
    global _installed
    from .. import _capture

    with _runs_lock:
        if not _installed:
            _capture.install()  # a step's print() is kept per task, as in a thread
            _installed = True
        try:
            ctx = _runs.get(pack.key, pack)
        except Exception as exc:  # the flow class cannot be rebuilt here, say
            return pickle.dumps(setup_failed(exc), protocol=5), []
        if not isinstance(ctx.store, ShippingReader):
            ctx.store = ShippingReader(pack.store_path, pack.cache_bytes, ctx.store.key)
    _task.blobs, _task.names, _task.pathspec = blobs, _names(pack, job), pathspec
    try:
        reply, buffers = run_job(ctx, job)
    finally:
        _task.blobs, _task.names = {}, {}
    sent = _sendable(reply)
    if sent is None:
        return _unsendable(reply), []
    return sent, [b if isinstance(b, bytes) else _bytes_array(b) for b in buffers]


def _bytes_array(buf: Any) -> Any:
    return np.frombuffer(memoryview(buf).cast("B"), np.uint8)


def _sendable(reply: Reply) -> bytes | None:
    # The reply pickled here, so that a result that cannot travel fails this task only.
    import cloudpickle

    try:
        return cloudpickle.dumps(reply, protocol=5)  # type: ignore[no-any-return]
    except Exception as exc:  # a foreach list that does not pickle, say
        reply.error = RemoteError(
            type(exc).__name__,
            f"the task's results could not be sent back from its Dask worker: {exc}",
        )
        return None


def _unsendable(reply: Reply) -> bytes:
    reply.items, reply.refs, reply.heads, reply.traceback = None, None, [], None
    return pickle.dumps(reply, protocol=5)
