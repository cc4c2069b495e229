"""The Dask executor: plain steps run on the workers of a ``distributed`` cluster.

The client is the one passed as ``dask_client=`` (a synchronous ``distributed.Client``; an
asynchronous one is refused before the run starts), else one connected to ``dask_address``,
else a ``distributed.LocalCluster`` of worker processes started for the run (one thread per
worker, ``ExecutorOptions.processes`` workers) and closed with its client when the run ends.
Everything slow happens in threads, never on the event loop: starting, connecting and
closing, reading and scattering values, waiting for results. A synchronous client talks to
its cluster from a loop thread of its own.

What travels (see ``_dask_task``): the run's pack and each value a task may read are
scattered ONCE per run, as Dask futures passed to the task, so Dask moves each to a worker at
most once and keeps it there until the run ends. The values a task may read are those its
step's source names (``self.x``, ``inp.x``), among its own artifacts, its parameters and its
join inputs' artifacts; they are read from the store here with the coordinator's checks. The
task sends back only what it set, as a pickled reply and raw payload buffers.

A worker that dies under a task (``os._exit``, a crash, the out-of-memory killer) makes Dask
report ``KilledWorker``, which fails the task with a retryable
:class:`~asyncflow.WorkerLostError`. Dask retries such a task on other workers
``distributed.scheduler.allowed-failures`` times first (3 by default; the cluster started
for a run sets 0, so one death fails the task). Dask cannot interrupt a running task: when a
task must stop (``@timeout``, a cancelled run) its future is cancelled and the task is
abandoned; it runs on in its worker until it returns, and its result is dropped.

Dask's active memory manager may drop extra copies of a value between tasks, so on a cluster
you pass, a value may travel to a worker again; the cluster started for a run turns it off.
"""

from __future__ import annotations

import contextlib
import pickle
import sys
import threading
import uuid
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from ..._errors import UsageError, WorkerLostError
from ..._spec._placement import effective_resources
from .._jobs import Job, Reply, RunPack
from .._placing import dask_resources

if TYPE_CHECKING:
    from .._context import RunContext

__all__ = ["DaskExecutor", "require_dask"]

_INSTALL = "pip install 'asyncflow[dask]'"
# How often a task whose shipped values were lost with a worker is sent again.
_RESHIPS = 2


def require_dask(client: Any) -> None:
    """Check, before a run starts, that its Dask steps can run. Blocking (imports).

    :raises UsageError: ``distributed`` is not installed, or ``client`` is asynchronous.
    """
    try:
        import distributed
    except ImportError as exc:
        raise UsageError(
            "this flow runs steps on Dask (executor='dask'), but the Dask distributed "
            f"package cannot be imported ({exc}); install it with {_INSTALL}, or choose "
            "executor='process' or 'thread'."
        ) from None
    import multiprocessing

    if getattr(multiprocessing.current_process(), "_inheriting", False):
        # A process that multiprocessing's spawn is starting (a LocalCluster's worker, say)
        # is importing the script that started it, and the script starts a run again.
        raise UsageError(
            "a run with Dask steps was started while a new process was importing the script "
            f"{_main_file()} (Dask's worker processes import it again), so it would start a "
            "run in every worker; nothing was run. Start runs under "
            "if __name__ == '__main__': in the script."
        )
    if client is None:
        return
    if not isinstance(client, distributed.Client):
        raise UsageError(
            f"dask_client= is a {type(client).__name__}, not a distributed.Client; pass a "
            "Client (Client(cluster) or Client('tcp://host:8786')), or dask_address=."
        )
    # (``Client.asynchronous`` is False when asked from another thread than its loop's.)
    if getattr(client, "_asynchronous", False) or client.asynchronous:
        raise UsageError(
            "dask_client= is an asynchronous distributed.Client (asynchronous=True), whose "
            "calls would run on the event loop; pass a synchronous Client (Client(cluster) "
            "or Client('tcp://host:8786')), or dask_address=."
        )


def _main_file() -> str:
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    return repr(path) if path else "(its __main__)"


class _Lost(Exception):
    """A task's shipped values were lost with a worker before it ran: ship and send again."""


class DaskExecutor:
    """Runs jobs on Dask workers (see the module doc).

    :param client: a synchronous ``distributed.Client`` to use (never closed here), or None.
    :param address: else the scheduler to connect to; with neither, a LocalCluster.
    :param ctx: the run (to read the values its tasks may read).
    :param workers: the size of a LocalCluster started for the run.
    """

    def __init__(
        self, client: Any, address: str | None, ctx: RunContext | None = None, workers: int = 2
    ) -> None:
        self.client = client
        self.address = address
        self._ctx = ctx
        self._workers = workers
        self._own: tuple[Any, Any] | None = None  # (client, cluster) started here
        self._connect_lock: anyio.Lock | None = None
        self._broken: WorkerLostError | None = None  # why the scheduler cannot be reached
        self._ship_lock = threading.Lock()
        self._pack: Any = None  # the pack's future
        self._blobs: dict[bytes, Any] = {}  # sha -> future of its ShippedBlob
        self._declared: dict[str, list[Any]] = {}  # step -> each worker's declared resources

    # --- connecting ---------------------------------------------------------------------
    async def _client(self) -> Any:
        if self._connect_lock is None:
            self._connect_lock = anyio.Lock()
        async with self._connect_lock:
            if self._broken is not None:  # the tasks waiting meanwhile fail at once too
                raise WorkerLostError(*self._broken.args)
            if self.client is None:
                try:
                    self._own = await anyio.to_thread.run_sync(self._start)
                except WorkerLostError as exc:
                    self._broken = exc
                    raise
                self.client = self._own[0]
        return self.client

    def _start(self) -> tuple[Any, Any]:
        # Blocking (a thread): connect to the scheduler, or start a cluster for the run.
        import dask
        import distributed

        Client: Any = distributed.Client
        LocalCluster: Any = distributed.LocalCluster
        if self.address is not None:
            try:
                return Client(self.address, set_as_default=False), None
            except (OSError, TimeoutError, ValueError, TypeError) as exc:
                # OSError, TimeoutError: nobody answers; ValueError: not an address at all
                # ('not a url', a host without a port)
                raise WorkerLostError(
                    f"cannot connect to the Dask scheduler at {self.address!r} ({exc}); start "
                    "it (dask scheduler) or correct the address (dask_address=, "
                    "--dask-address), then resume the run.",
                    None,
                ) from None
        settings = {
            "distributed.scheduler.allowed-failures": 0,
            "distributed.scheduler.active-memory-manager.start": False,
        }
        try:
            with dask.config.set(settings):
                cluster = LocalCluster(
                    n_workers=self._workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",  # a free port: never clash with another cluster
                )
        except Exception as exc:
            raise WorkerLostError(
                f"cannot start a Dask LocalCluster for the run ({type(exc).__name__}: {exc}); "
                "its worker processes import the script that started the run again, so a "
                "script must start runs under if __name__ == '__main__':. Or pass "
                "dask_client= or dask_address= (--dask-address) for a cluster of your own, "
                "then resume the run.",
                None,
            ) from exc
        try:
            return Client(cluster, set_as_default=False), cluster
        except BaseException:
            cluster.close()
            raise

    # --- running ------------------------------------------------------------------------
    async def run(self, pack: RunPack, job: Job, pathspec: str) -> Reply:
        """Run ``job`` on a Dask worker (see :class:`Executor`)."""
        client = await self._client()
        shas = self._wanted(pack, job)
        for round_ in range(_RESHIPS + 1):
            future = await anyio.to_thread.run_sync(self._submit, client, pack, job, shas, pathspec)
            try:
                return await anyio.to_thread.run_sync(
                    _result, future, pathspec, abandon_on_cancel=True
                )
            except _Lost:
                if round_ == _RESHIPS:
                    raise _lost(pathspec, "the values shipped to it were lost") from None
            finally:
                # Done, failed or cancelled (a @timeout, a cancelled run): Dask forgets it.
                # A running task cannot be interrupted: it is abandoned.
                if future.done():
                    future.release()  # never blocks
                else:
                    with anyio.CancelScope(shield=True):
                        await anyio.to_thread.run_sync(_drop, future)
        raise AssertionError("unreachable")

    def _wanted(self, pack: RunPack, job: Job) -> list[bytes]:
        # The values the task may read: what its step's source names, among its artifacts,
        # parameters and join inputs' artifacts (and the foreach list it splits).
        ctx = self._ctx
        if ctx is None:
            return []
        names = set(ctx.step_reads(job.step))
        var = ctx.graph[job.step].foreach_var
        if var:
            names.add(var)
        shas = [job.base[n] for n in names if n in job.base]
        shas.extend(pack.params[n] for n in names if n in pack.params)
        for parent in job.inputs or ():
            shas.extend(parent.refs[n] for n in names if n in parent.refs)
        return list(dict.fromkeys(shas))

    def _submit(
        self, client: Any, pack: RunPack, job: Job, shas: list[bytes], pathspec: str
    ) -> Any:
        # Blocking (a thread): scatter what was never shipped (or was lost), send the task.
        from ._dask_task import ShippedBlob, run_task

        with self._ship_lock:
            if self._pack is None or self._pack.status != "finished":
                self._pack = self._scatter(client, "pack", pack)
            blobs = {
                s: f
                for s in shas
                if (f := self._blobs.get(s)) is not None and f.status == "finished"
            }
            missing = [s for s in shas if s not in blobs]
            if missing:
                assert self._ctx is not None
                raws = self._ctx.store.read_raw_many(missing, check=True)
                for sha in missing:
                    blobs[sha] = self._blobs[sha] = self._scatter(
                        client, sha.hex(), ShippedBlob.of(raws[sha])
                    )
            pack_future = self._pack
        key = f"asyncflow-{pathspec}-{job.attempt}-{uuid.uuid4().hex[:12]}"
        resources = self._resources(client, job.step, pathspec)
        return client.submit(
            run_task, pack_future, job, blobs, pathspec, key=key, pure=False, resources=resources
        )

    def _resources(self, client: Any, step: str, pathspec: str) -> dict[str, float] | None:
        # Blocking (a thread): the step's @resources as the worker resources the cluster
        # declares (asked of the scheduler once per step and run), see _placing.
        if self._ctx is None:
            return None
        info = self._ctx.graph[step].info
        resources = effective_resources(info)
        if resources is None:
            return None
        declared = self._declared.get(step)
        if declared is None:
            workers = client.scheduler_info()["workers"].values()
            declared = self._declared[step] = [w.get("resources") or {} for w in workers]
        return dask_resources(resources, declared, pathspec)

    def _scatter(self, client: Any, what: str, value: Any) -> Any:
        key = f"asyncflow-{what}-{uuid.uuid4().hex[:12]}"
        return client.scatter({key: value}, hash=False)[key]

    # --- closing ------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Release what was shipped; close the client and cluster started here. In a
        thread, shielded from cancellation."""
        with anyio.CancelScope(shield=True):
            if self._connect_lock is not None:
                await self._connect_lock.acquire()  # not while a cluster is starting
                self._connect_lock.release()
            futures = [self._pack, *self._blobs.values()]
            self._pack, self._blobs = None, {}
            own, self._own = self._own, None
            if own is not None:
                self.client = None
            await anyio.to_thread.run_sync(_close, [f for f in futures if f is not None], own)


def _result(future: Any, pathspec: str) -> Reply:
    # Blocking (a thread): wait for the task, fetch and rebuild its reply.
    from distributed.client import FutureCancelledError
    from distributed.scheduler import KilledWorker

    try:
        sent, buffers = future.result()
    except KilledWorker:
        raise _lost(
            pathspec, "died (os._exit() in the step, a crash, or the out-of-memory killer)"
        ) from None
    except FutureCancelledError as exc:
        if "lost dependencies" in str(exc):
            raise _Lost() from None
        raise _lost(pathspec, f"was cancelled by Dask ({exc})") from None
    reply = pickle.loads(sent)
    assert isinstance(reply, Reply)
    reply.attach(buffers)
    return reply


def _lost(pathspec: str, how: str) -> WorkerLostError:
    return WorkerLostError(
        f"the Dask worker running task {pathspec} {how} before the task finished; the task "
        "failed, the run and the store are unharmed. Retry the step with @retry, or resume "
        "the run once the cause is fixed.",
        None,
    )


def _drop(future: Any) -> None:
    # Blocking (a thread): cancel the task if it has not finished, and forget it.
    with contextlib.suppress(Exception):
        if not future.done():
            future.cancel()
        future.release()


def _close(futures: list[Any], own: tuple[Any, Any] | None) -> None:
    # Blocking (a thread).
    for future in futures:
        with contextlib.suppress(Exception):
            future.release()
    if own is not None:
        client, cluster = own
        with contextlib.suppress(Exception):
            client.close()
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close()
