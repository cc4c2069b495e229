"""One run from start to end: parameters, the run record, the scheduler, the final status.

A resume is a run too: :func:`execute_run` with a :class:`ResumeRequest` reads the origin
first (``_resume``), reuses its parameters and lets the scheduler clone what it can.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from .._codecs import Encoded
from .._errors import NotFoundError, ParameterError, StoreError
from .._spec._config import configs_of
from .._spec._flowbase import FlowBase
from .._spec._flowgraph import FlowGraph
from .._spec._override import DecoSpec, decorate_graph
from .._spec._project import local_user
from .._spec._resolve import parameters_of
from .._spec._tags import run_system_tags
from .._store._rows import RunRow
from .._store._store import Store
from .._store._write_ops import CreateRun, FinishRun
from . import _capture
from ._attempt import storable
from ._configs import ConfigSources, with_configs
from ._context import RunContext
from ._events import RunEvents
from ._executors import ExecutorOptions
from ._limits import DEFAULT_MAX_WORKERS
from ._model import TaskOutcome
from ._packages import before_run
from ._placing import warn_runs_locally
from ._remote import call_remote, close_executors, pool_size
from ._run_params import resolve, resume_parameters
from ._scheduler import Scheduler
from ._switch import DEFAULT_MAX_PASSES

if TYPE_CHECKING:
    from ._resume import Origin

__all__ = ["ResumeRequest", "RunOptions", "RunResult", "execute_run"]


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How to run: where to store, how wide, which tags, whether to echo task output."""

    store_path: str
    max_workers: int = DEFAULT_MAX_WORKERS
    max_passes: int = DEFAULT_MAX_PASSES  # a loop's passes of one step (see _switch)
    tags: tuple[str, ...] = ()
    echo: bool = True
    cache_bytes: int = 256 << 20
    executor: str = "thread"  # where plain steps run unless they say (@executor)
    processes: int | None = None  # size of the process pool (None: see _remote.pool_size)
    dask_client: Any = None  # a distributed.Client to run "dask" steps on
    dask_address: str | None = None  # else the scheduler to connect to; else a LocalCluster
    # Decorators added to every step that lacks them, for this run only (``--with``).
    decorate: tuple[DecoSpec, ...] = ()
    project: tuple[str, str] | None = None  # (@project name, branch) of a project's run
    configs: ConfigSources = field(default_factory=ConfigSources)  # given for its Configs


@dataclass(frozen=True, slots=True)
class ResumeRequest:
    """Which run to resume (None: the flow's latest) and the step to re-run from, if any."""

    run_id: str | int | None = None
    step: str | None = None


@dataclass(frozen=True, slots=True)
class RunResult:
    """What a finished run leaves: its record (as stored) and the failed task if any."""

    row: RunRow
    failure: TaskOutcome | None

    @property
    def run_id(self) -> int:
        """The run's id."""
        return self.row.id

    @property
    def flow_name(self) -> str:
        """The flow's name."""
        return self.row.flow

    def failed_pathspec(self) -> str:
        """``Flow/run/step/task`` of the failed task."""
        assert self.failure is not None
        spec = self.failure.spec
        return f"{self.flow_name}/{self.run_id}/{spec.step}/{spec.task_id}"


def _uses_dask(graph: FlowGraph, options: RunOptions) -> bool:
    # The flow's default is Dask, or a plain step chose it with @executor("dask").
    return options.executor == "dask" or any(
        not node.info.is_async and node.info.executor == "dask" for node in graph.nodes.values()
    )


async def execute_run(
    flow_cls: type[FlowBase],
    graph: FlowGraph,
    params: Mapping[str, Any],
    options: RunOptions,
    *,
    resume: ResumeRequest | None = None,
    on_start: Callable[[int], None] | None = None,
    source: Encoded | None = None,
    events: RunEvents | None = None,
) -> RunResult:
    """Run the flow once, or resume a run. Bad input raises before anything is stored.

    :param resume: resume this run instead of starting afresh (``params`` must be empty:
        a resumed run reuses its origin's parameters).
    :param on_start: called with the new run's id once its record exists.
    :param source: the flow's source code in stored form (see ``_source``), recorded with
        the run; None records none.
    :param events: the hub the run publishes its events to (readers may wait on it before
        the run starts: they raise the error of a run that fails before it is recorded);
        None: a hub of its own. Every run records its events in the store either way.
    :raises ParameterError: a parameter is unknown, missing or invalid.
    :raises NotFoundError: the run or step to resume does not exist.
    :raises StoreError: the store cannot be opened or written.
    :raises UsageError: Dask steps, but no ``distributed`` (or an asynchronous client).
    :raises FlowValidationError: a decorator of ``options.decorate`` does not fit a step.
    """
    hub = RunEvents() if events is None else events
    try:
        return await _execute(flow_cls, graph, params, options, resume, on_start, source, hub)
    except BaseException as exc:
        if not hub.run_id:  # never recorded: no RunFinished will come
            hub.fail(exc if isinstance(exc, Exception) else None)
        raise


async def _execute(
    flow_cls: type[FlowBase],
    graph: FlowGraph,
    params: Mapping[str, Any],
    options: RunOptions,
    resume: ResumeRequest | None,
    on_start: Callable[[int], None] | None,
    source: Encoded | None,
    hub: RunEvents,
) -> RunResult:
    graph = decorate_graph(graph, options.decorate)  # the run's own graph: the class is untouched
    await before_run(flow_cls, graph)  # @conda/@pypi packages installed
    if _uses_dask(graph, options):  # checked (distributed imported) in a thread
        from ._executors._dask import require_dask

        await anyio.to_thread.run_sync(require_dask, options.dask_client)
    origin_id: int | None = None
    if resume is None:
        encoded = await resolve(flow_cls, graph.name, params)
        graph, configs = await with_configs(flow_cls, graph, options.configs)
        encoded.update(configs.encoded)  # stored as parameters are, by name
        reused: dict[str, tuple[str, bytes]] = {}
    else:
        if params:
            raise ParameterError(
                f"{graph.name}: a resumed run reuses the parameters of the run it resumes, "
                f"so it takes none (given: {', '.join(params)}); start a new run to change "
                "them."
            )
        from ._resume import parse_run_id  # a resume's reads: not imported by a run

        if resume.run_id is not None:
            origin_id = parse_run_id(graph.name, resume.run_id)
        if not os.path.exists(options.store_path):
            raise NotFoundError(
                f"flow {graph.name} has no run to resume: there is no store at "
                f"{options.store_path!r}; run the flow first, or pass store= pointing at the "
                "store that holds its runs."
            )
    # Before anything is stored: a warnings filter may make the warning an error.
    warn_runs_locally(graph, options.executor)
    store = Store.acquire_open(options.store_path)
    if store is None:
        store = await anyio.to_thread.run_sync(
            Store.acquire, options.store_path, options.cache_bytes
        )
    try:
        origin: Origin | None = None
        if resume is not None:
            from ._resume import load_origin

            origin = await anyio.to_thread.run_sync(
                load_origin, store, graph, origin_id, resume.step
            )
            encoded, reused = await resume_parameters(flow_cls, graph.name, origin)
            graph, configs = await with_configs(
                flow_cls, graph, options.configs, origin.params, store
            )
            encoded.update(configs.encoded)
            reused.update(configs.reused)  # the origin's configs: no file is read again
        created_at = time.time()
        system_tags = run_system_tags(local_user(), created_at, options.project)
        create = CreateRun(
            flow=graph.name,
            graph_json=json.dumps(graph.to_json()),
            created_at=created_at,
            tags=tuple(dict.fromkeys((*options.tags, *system_tags))),
            params={name: enc for name, enc in encoded.values()},
            origin_run_id=None if origin is None else origin.run.id,
            param_refs={name: sha for name, sha in reused.values()},
            source=source,
            trusted=origin is None or bool(origin.run.trusted),
        )
        store.writer.submit(create)
        with anyio.CancelScope(shield=True):  # a run row is created: it must get an end
            run_id, held = await _row_of(create)
            hub.bind(graph.name, run_id, store.writer, store.read, options.store_path)
            hub.run_started(create.origin_run_id)
            if held is not None:  # cancelled while the row was written: record its end
                with contextlib.suppress(StoreError):
                    await _finish(store, run_id, "cancelled", "the run was cancelled", hub=hub)
                raise held
        shas = {attr: enc.sha for attr, (_, enc) in encoded.items()}
        if reused:
            shas.update((attr, sha) for attr, (_, sha) in reused.items())
            declared = (*parameters_of(flow_cls), *configs_of(flow_cls))
            shas = {attr: shas[attr] for attr in declared}  # declared order
        ctx = RunContext(
            flow_cls=flow_cls,
            graph=graph,
            store=store,
            writer=store.writer,
            run_id=run_id,
            params=shas,
            parameter_names=tuple(shas),
            origin_run_id=create.origin_run_id,
            echo=options.echo,
            clones=None if origin is None else origin.oracle,
            budgeted=not create.trusted,
            executor=options.executor,
            call_remote=call_remote,
            executor_options=ExecutorOptions(
                pool_size(options.max_workers, options.processes),
                options.dask_client,
                options.dask_address,
                key_file=os.path.abspath(store.key.path),
            ),
            store_file=os.path.abspath(options.store_path),
            system_tags=system_tags,
            events=hub,
            lock=hub.lock,
            max_passes=options.max_passes,
        )
        scheduler = Scheduler(ctx, max(1, options.max_workers))
        _capture.install()
        try:
            try:
                if on_start is not None:
                    on_start(run_id)
                try:
                    await scheduler.run(scheduler.first_task())
                finally:
                    await close_executors(ctx)
            except BaseException:
                # Cancelled (or broken): the tasks running now get "cancelled" rows, queued
                # before the run's own end, and nothing else is committed from here on.
                ctx.cancel()
                # A store problem while recording it must not hide the cancellation.
                with anyio.CancelScope(shield=True), contextlib.suppress(StoreError):
                    await _finish(store, run_id, "cancelled", "the run was cancelled", hub=hub)
                raise
        finally:
            _capture.uninstall()
        failure = scheduler.failure
        status = "failed" if failure is not None else "succeeded"
        error = None
        if failure is not None and failure.error is not None:
            error = storable(
                f"step {failure.spec.step!r}: {type(failure.error).__name__}: {failure.error}"
            )
        finished_at = await _finish(store, run_id, status, error, graph.name, hub)
        row = RunRow(
            id=run_id,
            flow=graph.name,
            status=status,
            created_at=create.created_at,
            finished_at=finished_at,
            origin_run_id=create.origin_run_id,
            graph=create.graph_json,
            error=error,
            tags=create.tags,
            params=tuple(
                sorted(
                    [(name, enc.sha) for name, enc in create.params.items()]
                    + list(create.param_refs.items())
                )
            ),
            source_sha=None if source is None else source.sha,
            uid=create.uid,
            # Signed by this process's writer; a run resumed from an untrusted one is not trusted.
            trusted=create.trusted,
        )
        return RunResult(row, failure)
    finally:
        store.release()


async def _row_of(create: CreateRun) -> tuple[int, BaseException | None]:
    """The new run's id, and the cancellation that came while its row was being written.

    An anyio shield does not hold off a plain ``Task.cancel()`` on asyncio, and a row once
    submitted is written: so a cancellation is held (returned) until the row exists, to be
    raised once the run has its end.
    """
    waiter = asyncio.wrap_future(create.future)
    held: BaseException | None = None
    while True:
        try:
            return await asyncio.shield(waiter), held
        except asyncio.CancelledError as exc:
            if not waiter.done():
                held = exc
                continue
            if waiter.cancelled() or waiter.exception() is not None:
                raise  # no row was written
            return waiter.result(), exc


async def _finish(
    store: Store,
    run_id: int,
    status: str,
    error: str | None,
    flow: str = "",
    hub: RunEvents | None = None,
) -> float:
    """Record the run's end (with its RunFinished); return when it is in the main file.

    :raises StoreError: a write of this run failed (the run is then recorded as failed, with
        the store problem as its error), or its end itself could not be recorded.
    """
    op = FinishRun(run_id, status, time.time(), error)
    if hub is None:
        store.writer.submit(op)
    else:
        hub.finish(op)
    run = f"run {flow}/{run_id}" if flow else f"run {run_id}"
    try:
        try:
            await asyncio.wrap_future(op.future)
        finally:
            if hub is not None:  # readers end with the RunFinished as the writer recorded it
                hub.finished_with(op)
    except StoreError as exc:
        store.writer.forget_run(run_id)
        raise StoreError(
            f"{run} could not be saved, nor marked as failed (the store shows it as "
            f"running): {exc}",
            exc.path,
        ) from exc
    lost = store.writer.forget_run(run_id)
    if lost is not None:
        raise StoreError(
            f"{run} could not be saved and is recorded as failed: {lost}", lost.path
        ) from lost
    return op.finished_at
