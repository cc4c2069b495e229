"""The coordinator's side of a task that runs in another process: send it, take its reply.

An attempt of a plain step whose executor is ``process`` or ``dask`` is awaited on the loop
like a coroutine step: :func:`call_remote` makes the run's pack (once, in a thread), makes
sure every value the task may read is committed (a worker reads the store file, not this
process's memory), hands the job to the executor and turns the reply into the same result a
thread would have produced. The attempt's policies (``@retry``, ``@timeout``, ``@catch``) and
its commit stay with ``_attempt``: nothing else differs between executors.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import uuid
from typing import TYPE_CHECKING

import anyio.to_thread

from .._codecs import Encoded
from ._context import RunContext
from ._executors import Executor, ExecutorOptions, make_executor
from ._model import TaskOutcome

if TYPE_CHECKING:
    from ._attempt import Attempt
    from ._jobs import Job, Reply, RunPack

__all__ = ["call_remote", "close_executors", "pool_size"]


def pool_size(max_workers: int, processes: int | None) -> int:
    """The size of the process pool: ``processes`` if given, else the machine's cores
    (at least 2, so tasks overlap), at most ``max_workers``."""
    if processes is not None:
        return processes
    return min(max_workers, max(2, os.cpu_count() or 1))


def _executor(ctx: RunContext, name: str) -> Executor:
    executor: Executor | None = ctx.executors.get(name)
    if executor is None:
        options = ctx.executor_options
        assert isinstance(options, ExecutorOptions)
        executor = make_executor(name, options, ctx)
        ctx.executors[name] = executor
    return executor


async def close_executors(ctx: RunContext) -> None:
    """Stop the workers of every executor the run started (shielded from cancellation)."""
    with anyio.CancelScope(shield=True):
        for executor in list(ctx.executors.values()):
            await executor.aclose()
        ctx.executors.clear()


def _make_pack(ctx: RunContext, key: str, cache_bytes: int) -> RunPack:
    import cloudpickle

    from ._jobs import RunPack  # what a worker needs: not imported by a run on threads

    graph = ctx.graph
    flow = cloudpickle.dumps((ctx.flow_cls, graph.name, graph.doc, dict(graph.nodes)), protocol=5)
    options = ctx.executor_options
    assert isinstance(options, ExecutorOptions) and ctx.store_file is not None
    return RunPack(
        key=key,
        flow=flow,
        store_path=ctx.store_file,  # absolute, taken when the run started
        key_path=options.key_file,
        run_id=ctx.run_id,
        origin_run_id=ctx.origin_run_id,
        params=dict(ctx.params),
        budgeted=ctx.budgeted,
        cache_bytes=cache_bytes,
        sys_path=tuple(os.path.abspath(p) if p else os.getcwd() for p in sys.path),
        system_tags=ctx.system_tags,
    )


async def _pack(ctx: RunContext) -> RunPack:
    pack = ctx.pack
    if pack is None:
        key = f"{ctx.run_id}-{uuid.uuid4().hex}"
        pack = await anyio.to_thread.run_sync(_make_pack, ctx, key, ctx.store.cache.max_bytes)
        if ctx.pack is None:
            ctx.pack = pack
        pack = ctx.pack
    from ._jobs import RunPack

    assert isinstance(pack, RunPack)
    return pack


async def _committed(ctx: RunContext, attempt: Attempt) -> None:
    # A worker reads the store file: wait until the values this task may read are in it.
    spec, pending, writer = attempt.spec, ctx.store.pending, ctx.writer
    if not pending or writer is None:
        return
    shas = list(spec.base.values())
    for parent in spec.inputs or ():
        shas.extend(parent.refs.values())
    if any(sha in pending for sha in shas):
        await asyncio.wrap_future(writer.flush())


def _job(attempt: Attempt, run: str) -> Job:
    from ._jobs import Job, ParentRef

    spec, info = attempt.spec, attempt.ctx.graph[attempt.spec.step].info
    inputs = None
    if spec.inputs is not None:
        inputs = tuple(
            ParentRef(p.spec.task_id, p.spec.step, p.spec.path, p.refs) for p in spec.inputs
        )
    return Job(
        run=run,
        task_id=spec.task_id,
        step=spec.step,
        path=spec.path,
        stack=spec.stack,
        base=dict(spec.base),
        inputs=inputs,
        attempt=attempt.number,
        keep_on_error=info.catch is not None,
        pass_index=spec.pass_index,
    )


async def call_remote(attempt: Attempt, name: str) -> tuple[TaskOutcome, list[Encoded]]:
    """Run ``attempt`` on the executor ``name``; its result, or raise its error."""
    ctx, spec = attempt.ctx, attempt.spec
    attempt.begin()
    try:
        executor = _executor(ctx, name)
        pack = await _pack(ctx)
        await _committed(ctx, attempt)
        reply = await executor.run(pack, _job(attempt, pack.key), ctx.pathspec(spec))
    finally:
        attempt.finished = attempt.finished or time.time()
    attempt.started, attempt.finished = reply.started or attempt.started, reply.finished
    attempt.cards = reply.cards
    _take_output(attempt, reply)
    error = reply.error
    if error is not None:
        if reply.refs is not None:
            attempt.kept = (reply.refs, reply.blobs)
        if reply.traceback is not None:
            with contextlib.suppress(AttributeError, TypeError):
                error.__af_traceback__ = reply.traceback  # type: ignore[attr-defined]
        raise error
    assert reply.refs is not None
    outcome = TaskOutcome(spec, reply.refs, reply.targets, reply.items)
    return outcome, reply.blobs


def _take_output(attempt: Attempt, reply: Reply) -> None:
    # What the task printed in its worker becomes its captured output here, echoed (with the
    # task's prefix) as a thread's would have been, only at the end of the task.
    cap = attempt.cap
    for which, text in (("stdout", reply.stdout), ("stderr", reply.stderr)):
        if not text:
            continue
        cap.take(which, text)
        cap.echo_rest(which)
    if cap.lines is not None:
        cap.lines.end()
