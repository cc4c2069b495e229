"""Where and how a step runs, at run time: ``@kubernetes``/``@batch`` warned about once per
run, ``@environment`` variables set around a task in its worker, ``@resources`` as Dask worker
resources.

- The warning (:func:`warn_runs_locally`) is a :class:`~asyncflow.RunsLocallyWarning` given
  through :mod:`warnings` before the run starts, pointing at the first such step's ``def``;
  it is never deduplicated across runs (each run says it once), and warning filters apply.
- A task's variables (:func:`task_environment`) are set in its worker process and the earlier
  values restored after the task: a worker serves many tasks. Tasks with variables take a
  process-wide lock while they run, so two of them never mix their variables (a Dask worker
  with several threads runs them one at a time).
- Dask (:func:`dask_resources`): a step's resources become ``resources=`` of its task only
  for the names (``CPU``, ``MEMORY`` in bytes, ``GPU``) some worker of the cluster declares;
  a task no worker can take fails at once instead of waiting forever.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from .._errors import RunsLocallyWarning, UsageError
from .._spec._flowgraph import FlowGraph
from .._spec._placement import COMPUTE_LAYERS
from .._spec._settings import Resources
from ._context import where_step_runs

__all__ = ["dask_resources", "task_environment", "warn_runs_locally"]

_WHERE = {
    "loop": "on the event loop",
    "thread": "on worker threads of this process",
    "process": "on the process pool of this machine",
    "dask": "on the Dask executor",
}


def warn_runs_locally(graph: FlowGraph, default_executor: str) -> None:
    """Warn once that the steps with ``@kubernetes`` or ``@batch`` run here, and where."""
    steps = [node.info for node in graph if node.info.compute is not None]
    if not steps:
        return
    places: dict[str, list[str]] = {}
    for info in steps:
        assert info.compute is not None
        where = where_step_runs(info, default_executor)
        places.setdefault(where, []).append(f"{info.name} (@{info.compute.name})")
    layers = " or ".join(sorted({COMPUTE_LAYERS[i.compute.name] for i in steps if i.compute}))
    said = "; ".join(f"{', '.join(names)} {_WHERE[w]}" for w, names in places.items())
    message = (
        f"{graph.name}: asyncflow does not send steps to {layers}; these steps run here "
        f"instead: {said}. Their cpu/memory/gpu are recorded as the steps' resources."
    )
    first = steps[0]
    # No registry: the default filter shows it for every run, not once per process.
    warnings.warn_explicit(message, RunsLocallyWarning, first.file, first.line, registry=None)


_env_lock = threading.Lock()


@contextlib.contextmanager
def task_environment(variables: Iterable[tuple[str, str]] | None) -> Iterator[None]:
    """Set ``variables`` in this process while the block runs; restore the earlier values
    (or their absence) after it, whatever the block did to them."""
    pairs = tuple(variables or ())
    if not pairs:
        yield
        return
    with _env_lock:
        before = {name: os.environ.get(name) for name, _ in pairs}
        try:
            for name, value in pairs:
                os.environ[name] = value
            yield
        finally:
            for name, old in before.items():
                if old is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = old


def dask_resources(
    resources: Resources | None, declared: Iterable[Mapping[str, Any]], pathspec: str
) -> dict[str, float] | None:
    """The ``resources=`` to submit a task with, given what each worker declares.

    :raises UsageError: the cluster declares such resources, but no worker has enough.
    """
    if resources is None:
        return None
    wanted: dict[str, float] = {"CPU": resources.cpu, "MEMORY": resources.memory * 2**20}
    if resources.gpu:
        wanted["GPU"] = resources.gpu
    workers = [dict(d or {}) for d in declared]
    asked = {k: v for k, v in wanted.items() if any(k in d for d in workers)}
    if not asked:
        return None
    if any(all(d.get(k, 0) >= v for k, v in asked.items()) for d in workers):
        return asked
    need = ", ".join(f"{k}={v:g}" for k, v in asked.items())
    most = ", ".join(f"{k}={max(d.get(k, 0) for d in workers):g}" for k in asked)
    raise UsageError(
        f"task {pathspec} needs the Dask worker resources {need} (from its step's "
        f"@resources; MEMORY in bytes), but no worker of the cluster declares that much (the "
        f"most any worker declares: {most}), so Dask would hold the task forever. Start "
        "workers that declare enough (dask worker --resources 'CPU=...,MEMORY=...'), or "
        "lower the step's @resources."
    )
