"""What runs in a worker (a process of the pool, or a Dask worker): one task from a job.

The worker rebuilds the run's context once per run (:func:`context_of`): the flow class, its
graph, and a read-only :class:`~asyncflow._store._reader.BlobReader` on the store file. A task
then runs exactly as in a thread of the coordinator (the same ``Attempt``: a fresh flow
instance, ``current``, captured output, lazy artifact reads checked as at home), except that
its artifacts are encoded here and sent back, never written: only the coordinator writes.

Values a worker may not be able to read from the file (a Dask worker on another machine) are
shipped with the job, each with the coordinator's verdict, and served by a reader of
``_executors/_dask_task`` before the file.
"""

from __future__ import annotations

import pickle
import sys
import time
from collections import OrderedDict
from types import MappingProxyType

from .._spec._flowgraph import FlowGraph
from .._store._reader import BlobReader
from .._store._trust import TrustKey
from ._attempt import Attempt, kept_artifacts, traceback_text
from ._context import RunContext
from ._jobs import BlobHead, Job, RemoteError, Reply, RunPack
from ._model import TaskOutcome, TaskSpec
from ._placing import task_environment

__all__ = ["WorkerRuns", "context_of", "run_job", "setup_failed"]

# Runs a worker keeps the context of (a pool serves one run; Dask workers may serve several).
_KEEP_RUNS = 4


def context_of(pack: RunPack) -> RunContext:
    """The context of ``pack``'s run in this worker: flow class, graph, read-only store."""
    for entry in reversed(pack.sys_path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    flow_cls, name, doc, nodes = pickle.loads(pack.flow)
    graph = FlowGraph(name=name, doc=doc, nodes=MappingProxyType(nodes))
    reader = BlobReader(pack.store_path, pack.cache_bytes, TrustKey(pack.key_path))
    return RunContext(
        flow_cls=flow_cls,
        graph=graph,
        store=reader,
        run_id=pack.run_id,
        params=dict(pack.params),
        parameter_names=tuple(pack.params),
        origin_run_id=pack.origin_run_id,
        echo=False,  # the coordinator prints a task's output when it gets it back
        budgeted=pack.budgeted,
        store_file=pack.store_path,  # absolute (made so by the coordinator)
        system_tags=pack.system_tags,
    )


class WorkerRuns:
    """The run contexts this worker has built, the most recent few (by pack key)."""

    def __init__(self) -> None:
        self._runs: OrderedDict[str, RunContext] = OrderedDict()

    def known(self, key: str) -> bool:
        """Whether the run ``key`` needs no pack."""
        return key in self._runs

    def get(self, key: str, pack: RunPack | None) -> RunContext:
        """The context of run ``key``, built from ``pack`` the first time."""
        ctx = self._runs.get(key)
        if ctx is None:
            if pack is None:
                raise RuntimeError(f"this worker has no pack for run {key!r}")
            ctx = context_of(pack)
            self._runs[key] = ctx
            while len(self._runs) > _KEEP_RUNS:
                _, old = self._runs.popitem(last=False)
                old.store.close_reader()
        self._runs.move_to_end(key)
        return ctx


def run_job(ctx: RunContext, job: Job) -> tuple[Reply, list[bytes | memoryview]]:
    """Run one attempt of ``job``'s task here; its reply and the payload buffers to send.

    The task reads through ``ctx.store``: the store file (read-only), or, on a Dask worker,
    a reader that serves the values shipped with the task first (``_dask_task``).
    """
    parents = None
    if job.inputs is not None:
        parents = [
            TaskOutcome(TaskSpec(p.task_id, p.step, p.path, (), {}), p.refs) for p in job.inputs
        ]
    spec = TaskSpec(job.task_id, job.step, job.path, job.stack, job.base, parents, job.pass_index)
    attempt = Attempt(ctx, spec, job.attempt)
    try:
        with task_environment(ctx.graph[job.step].info.environment):  # @environment
            outcome, blobs = attempt.call_sync()
        reply = Reply(
            attempt.started,
            attempt.finished,
            attempt.cap.text("stdout"),
            attempt.cap.text("stderr"),
            outcome.refs,
            [],
            outcome.targets,
            outcome.foreach_items,
        )
    except BaseException as exc:  # KeyboardInterrupt too: the step's own failure
        blobs = []
        refs = None
        if job.keep_on_error:
            refs, blobs = kept_artifacts(attempt.state, attempt.flow)
        reply = Reply(
            attempt.started,
            attempt.finished or time.time(),
            attempt.cap.text("stdout"),
            attempt.cap.text("stderr"),
            refs,
            [],
            error=_sendable(exc),
            traceback=traceback_text(exc),
        )
    finally:
        # The attempt noted itself as running (ctx.begin); only the coordinator's commit
        # forgets it, so forget it here, or this worker keeps every task and its values.
        with ctx.lock:
            ctx.running.pop(job.task_id, None)
    reply.cards = attempt.cards
    reply.heads = [BlobHead(b.encoding, b.meta, b.sha, b.size) for b in blobs]
    return reply, [b.payload for b in blobs]


def _sendable(error: BaseException) -> BaseException:
    # The step's own exception if it survives a round trip through pickle, else its gist.
    import cloudpickle

    if not isinstance(error, Exception | SystemExit):
        # KeyboardInterrupt, GeneratorExit or a BaseException of the step's own: raised as
        # itself in the coordinator it would stop the run's machinery, not fail one task.
        return RemoteError(type(error).__name__, str(error))
    try:
        pickle.loads(cloudpickle.dumps(error))
    except Exception:
        return RemoteError(type(error).__name__, str(error))
    return error


def setup_failed(error: Exception) -> Reply:
    """The reply to a job whose run this worker could not set up (see :func:`context_of`)."""
    now = time.time()
    wrapped = RemoteError(
        type(error).__name__,
        f"the worker could not load the flow to run the task: {error}. A flow defined in an "
        "importable module is imported by name in the worker: run from the folder that holds "
        "it, or make it importable (PYTHONPATH, or install the package).",
    )
    return Reply(
        now, now, None, None, None, [], error=wrapped, traceback=traceback_text(error), ready=False
    )
