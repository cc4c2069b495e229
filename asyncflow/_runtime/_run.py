"""One run from start to end: parameters, the run record, the scheduler, the final status."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiofiles
import anyio
import anyio.to_thread

from .._codecs import CodecError, Encoded, encode
from .._errors import ParameterError
from .._spec._flowbase import FlowBase
from .._spec._graph import FlowGraph
from .._spec._params import IncludeFile, parameters_of, resolve_parameters
from .._store._queries import RunRow
from .._store._store import Store
from .._store._writer import CreateRun, FinishRun
from . import _capture
from ._model import TaskOutcome
from ._scheduler import Scheduler
from ._task import RunContext

__all__ = ["RunOptions", "RunResult", "execute_run"]

DEFAULT_MAX_WORKERS = 16


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How to run: where to store, how wide, which tags, whether to echo task output."""

    store_path: str
    max_workers: int = DEFAULT_MAX_WORKERS
    tags: tuple[str, ...] = ()
    echo: bool = True
    cache_bytes: int = 256 << 20


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


async def _read_file(param: IncludeFile, path: str, flow: str) -> Any:
    try:
        async with aiofiles.open(path, "rb") as fh:
            data: bytes = await fh.read()
    except OSError as exc:
        raise ParameterError(
            f"{flow}: cannot read the file {path!r} for IncludeFile {param.name!r} "
            f"({exc.strerror or exc}); pass an existing, readable file with --{param.name} "
            f"or {param.name}=...",
            param.name,
        ) from exc
    return param.decode_content(data, path=path, flow=flow)


async def resolve(
    flow_cls: type[FlowBase], flow_name: str, given: Mapping[str, Any]
) -> dict[str, tuple[str, Encoded]]:
    """Resolve, read and encode the parameters: attribute -> (parameter name, encoded)."""
    declared = parameters_of(flow_cls)
    resolved = resolve_parameters(flow_cls, flow_name, given)
    values: dict[str, Any] = dict(resolved.values)
    for attr, path in resolved.files.items():
        param = declared[attr]
        assert isinstance(param, IncludeFile)
        values[attr] = await _read_file(param, path, flow_name)
    out: dict[str, tuple[str, Encoded]] = {}
    for attr, value in values.items():
        try:
            out[attr] = (declared[attr].name, encode(value))
        except CodecError as exc:
            raise ParameterError(
                f"{flow_name}: the value of parameter {declared[attr].name!r} cannot be "
                f"stored ({exc}); pass a plain value (number, string, JSON-like data).",
                declared[attr].name,
            ) from exc
    return out


async def execute_run(
    flow_cls: type[FlowBase],
    graph: FlowGraph,
    params: Mapping[str, Any],
    options: RunOptions,
) -> RunResult:
    """Run the flow once. Validation and parameter errors raise before anything is stored.

    :raises ParameterError: a parameter is unknown, missing or invalid.
    :raises StoreError: the store cannot be opened or written.
    """
    encoded = await resolve(flow_cls, graph.name, params)
    store = Store.acquire_open(options.store_path)
    if store is None:
        store = await anyio.to_thread.run_sync(
            Store.acquire, options.store_path, options.cache_bytes
        )
    try:
        create = CreateRun(
            flow=graph.name,
            graph_json=json.dumps(graph.to_json()),
            created_at=time.time(),
            tags=tuple(dict.fromkeys(options.tags)),
            params={name: enc for name, enc in encoded.values()},
        )
        store.writer.submit(create)
        run_id = await asyncio.wrap_future(create.future)
        ctx = RunContext(
            flow_cls=flow_cls,
            graph=graph,
            store=store,
            run_id=run_id,
            params={attr: enc.sha for attr, (_, enc) in encoded.items()},
            parameter_names=tuple(encoded),
            echo=options.echo,
        )
        scheduler = Scheduler(ctx, max(1, options.max_workers))
        _capture.install()
        try:
            try:
                await scheduler.run(scheduler.first_task())
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await _finish(store, run_id, "cancelled", "the run was cancelled")
                raise
        finally:
            _capture.uninstall()
        failure = scheduler.failure
        status = "failed" if failure is not None else "succeeded"
        error = None
        if failure is not None and failure.error is not None:
            error = f"step {failure.spec.step!r}: {type(failure.error).__name__}: {failure.error}"
        finished_at = await _finish(store, run_id, status, error)
        row = RunRow(
            id=run_id,
            flow=graph.name,
            status=status,
            created_at=create.created_at,
            finished_at=finished_at,
            origin_run_id=None,
            graph=create.graph_json,
            error=error,
            tags=create.tags,
            params=tuple((name, enc.sha) for name, enc in create.params.items()),
        )
        return RunResult(row, failure)
    finally:
        store.release()


async def _finish(store: Store, run_id: int, status: str, error: str | None) -> float:
    op = FinishRun(run_id, status, time.time(), error)
    store.writer.submit(op)
    await asyncio.wrap_future(op.future)
    if store.writer.error is not None:
        raise store.writer.error
    return op.finished_at
