"""Where plain steps run besides the coordinator's threads: behind one small interface.

An :class:`Executor` takes a run's pack and a task's job (``_jobs``) and returns the task's
reply: it runs the job in a worker (``_worker``) and never touches the store. The thread
executor is not one of these: plain steps on threads take the scheduler's fast path.
Executors are made per run, on first use (:func:`make_executor`), and closed when it ends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .._context import RunContext
    from .._jobs import Job, Reply, RunPack

__all__ = ["Executor", "ExecutorOptions", "make_executor"]


class Executor(Protocol):
    """Runs jobs in workers; see the module doc."""

    async def run(self, pack: RunPack, job: Job, pathspec: str) -> Reply:
        """Run one attempt of a task in a worker and return its reply.

        :param pathspec: the task's ``Flow/run/step/task``, for messages.
        :raises WorkerLostError: the worker ended before the task did.
        """
        ...

    async def aclose(self) -> None:
        """Stop the workers this executor started (off the event loop)."""
        ...


class ExecutorOptions:
    """What the executors of a run are made from (the flow's options)."""

    __slots__ = ("dask_address", "dask_client", "key_file", "processes")

    def __init__(
        self,
        processes: int,
        dask_client: Any = None,
        dask_address: str | None = None,
        *,
        key_file: str = "",
    ) -> None:
        self.processes = processes
        self.dask_client = dask_client
        self.dask_address = dask_address
        # An absolute path, taken when the run starts (as RunContext.store_file): a worker
        # started later must open the key the run opened, whatever the working directory.
        self.key_file = key_file


def make_executor(name: str, options: ExecutorOptions, ctx: RunContext) -> Executor:
    """A new executor ``name`` ("process" or "dask") for the run ``ctx``."""
    if name == "process":
        from ._process import ProcessExecutor

        return ProcessExecutor(options.processes)
    if name == "dask":
        from ._dask import DaskExecutor

        return DaskExecutor(options.dask_client, options.dask_address, ctx, options.processes)
    raise ValueError(f"unknown executor {name!r}")
