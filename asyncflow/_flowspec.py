"""``FlowSpec``: the class users subclass. Defines steps, runs them, and has a CLI."""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from ._cli._entry import is_script_entry, loop_running
from ._errors import RESUME_HINT, StepFailed, UsageError, store_option
from ._imports import IMPORTS
from ._runtime._limits import DEFAULT_MAX_PASSES, DEFAULT_MAX_WORKERS
from ._spec._decorators import EXECUTORS
from ._spec._flowbase import FlowBase
from ._store._cache import DEFAULT_CACHE_BYTES

if TYPE_CHECKING:
    from ._client import Run
    from ._codecs import Encoded
    from ._runtime._events import RunEvents
    from ._runtime._run import ResumeRequest, RunResult
    from ._runtime._spin import SpinResult
    from ._runtime._stream import RunStream
    from ._spec._flowgraph import FlowGraph

# Defining a flow imports this module and the `_spec` it needs, nothing more: the runtime,
# the client, asyncio and SQLite are imported by the methods that run or read (once per
# process; tests/test_startup.py checks what `import asyncflow` and a flow's class load).

__all__ = ["FlowSpec"]


class FlowSpec(FlowBase):
    """Base class of a flow. Subclass it, write ``@step`` methods, then ``await flow.run()``.

    :param store: path of the SQLite file holding every run (default: ``$ASYNCFLOW_STORE``,
        else the nearest ``asyncflow.db`` in the current directory or a parent, else
        ``asyncflow.db`` in the current directory; inside a running step, that run's store).
    :param max_workers: how many tasks may run at once (default 16).
    :param max_passes: how many tasks of one step a run may start, per foreach element,
        before the run fails (default 1000); a guard against a loop that never ends. Counted
        over the whole run (see ``current.pass_index``): nested loops need the product.
    :param tags: tags recorded on every run started from this object.
    :param cache_bytes: bound of the in-memory cache of loaded artifact bytes
        (default 256 MiB).
    :param echo: also print each task's output to the terminal, prefixed with its pathspec.
    :param executor: where plain steps run unless they say otherwise with ``@executor``:
        ``"thread"`` (worker threads of this process, the default), ``"process"`` (a pool of
        worker processes on this machine) or ``"dask"`` (Dask workers). Coroutine steps always
        run on the event loop.
    :param processes: size of the process pool (default: the machine's cores, at least 2 and
        at most ``max_workers``).
    :param dask_client: a ``distributed.Client`` to run ``"dask"`` steps on.
    :param dask_address: else the address of a Dask scheduler to connect to; with neither, a
        ``distributed.LocalCluster`` is started for the run and closed after it.
    :param branch: for a ``@project`` flow, run on branch ``test.<branch>`` (Metaflow's
        ``--branch``) instead of ``user.<username>``.
    :param production: for a ``@project`` flow, run on the production branch ``prod``
        (``prod.<branch>`` with ``branch``), as Metaflow's ``--production``.
    :param config: values of the flow's Configs by name, each a dict or JSON text (the
        command line's ``--config``/``--config-value`` win over these); read when each run
        starts.
    :raises ValueError: ``max_workers`` or ``processes`` is not a positive integer, or
        ``executor`` is not one of the three.
    :raises UsageError: ``branch`` or ``production`` for a flow without ``@project``, or a
        branch name that is not lowercase letters, digits and underscores.

    ``XFlow()`` written as a statement of its own at the top level of the script being run
    (``if __name__ == "__main__": XFlow()``, as Metaflow's flows end) runs the command line,
    as ``XFlow.main()`` does, and exits. Constructing a flow any other way (``flow =
    XFlow()``, with arguments, in a function, a notebook, an imported module, or with an
    event loop running) never reads ``sys.argv``.
    """

    _af_graph_cache: ClassVar[dict[type, FlowGraph]] = {}
    # The flow's source code in stored form (None: unreadable), captured with the graph.
    _af_source_cache: ClassVar[dict[type, Encoded | None]] = {}

    def __init__(
        self,
        store: str | os.PathLike[str] | None = None,
        *,
        max_workers: int = DEFAULT_MAX_WORKERS,
        max_passes: int = DEFAULT_MAX_PASSES,
        tags: Iterable[str] = (),
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        echo: bool = True,
        executor: str = "thread",
        processes: int | None = None,
        dask_client: Any = None,
        dask_address: str | None = None,
        branch: str | None = None,
        production: bool = False,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        if _no_arguments(locals()) and is_script_entry(sys._getframe(1)):
            # `XFlow()` as the last statement of a flow file, as Metaflow writes it.
            type(self).main()
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError(
                f"max_workers must be a positive integer, not {max_workers!r}; "
                f"leave it out for the default of {DEFAULT_MAX_WORKERS}."
            )
        if isinstance(max_passes, bool) or not isinstance(max_passes, int) or max_passes < 1:
            raise UsageError(
                f"max_passes must be a positive integer, not {max_passes!r}; leave it out for "
                f"the default of {DEFAULT_MAX_PASSES} passes of a step in a loop.",
                "max_passes",
            )
        if executor not in EXECUTORS:
            raise ValueError(
                f"executor must be one of {', '.join(map(repr, EXECUTORS))}, not {executor!r}."
            )
        if processes is not None and (
            isinstance(processes, bool) or not isinstance(processes, int) or processes < 1
        ):
            raise ValueError(
                f"processes must be a positive integer, not {processes!r}; leave it out for "
                "one worker process per core."
            )
        if dask_address is not None and (
            not isinstance(dask_address, str) or not dask_address.strip()
        ):
            raise UsageError(
                f"dask_address must be the address of a Dask scheduler, such as "
                f"'tcp://127.0.0.1:8786', not {dask_address!r}; leave it out to start a "
                "LocalCluster for each run.",
                "dask_address",
            )
        with IMPORTS:
            from ._runtime._configs import ConfigSources
            from ._runtime._run import RunOptions
            from ._spec._project import resolve_branch
            from ._spec._tags import normalize_tags
            from ._store._paths import resolve_store_path

        self._af_options = RunOptions(
            store_path=resolve_store_path(store),
            max_workers=max_workers,
            max_passes=max_passes,
            tags=normalize_tags(tags),
            echo=echo,
            cache_bytes=cache_bytes,
            executor=executor,
            processes=processes,
            dask_client=dask_client,
            dask_address=dask_address,
            project=resolve_branch(type(self), branch, production),
            configs=ConfigSources(_config_values(config)),
        )

    # Few public names here: every attribute of the class hides an artifact of that name.
    @classmethod
    def _af_graph(cls) -> FlowGraph:
        """The flow's validated graph (built once per class, with its source captured).

        :raises FlowValidationError: the flow definition breaks a rule.
        """
        cached = FlowSpec._af_graph_cache.get(cls)
        if cached is None:
            # Reads every step's source and the flow's file once; the caller may run this in
            # a thread. The source is cached first: whoever finds the graph finds it too.
            with IMPORTS:
                from ._runtime._source import capture_source
                from ._spec._graph import build_graph

            cached = build_graph(cls)
            FlowSpec._af_source_cache[cls] = capture_source(cls)
            FlowSpec._af_graph_cache[cls] = cached
        return cached

    async def run(self, **params: Any) -> Run:
        """Run the flow once and return the finished :class:`Run`.

        Cancelling the task that awaits this stops the run: running coroutine steps are
        cancelled, no new task starts, the tasks that were running are recorded as
        ``cancelled`` and so is the run (it can be resumed); then the cancellation goes on.

        :param params: parameter values by parameter name (IncludeFiles take a path).
        :raises FlowValidationError: the flow definition is wrong (nothing ran).
        :raises ParameterError: a parameter is unknown, missing or invalid (nothing ran).
        :raises StepFailed: a step raised; ``.run`` is the failed run, ``__cause__`` the
            step's exception.
        """
        with IMPORTS:
            from ._spec._resolve import parameters_of, refuse_run_options

        refuse_run_options(type(self).__name__, "run", params, parameters_of(type(self)))
        return await self._af_execute(params)

    async def resume(
        self, run_id: str | int | None = None, step: str | None = None, **given: Any
    ) -> Run:
        """Resume a run: a new run that reuses what the earlier one (its origin) finished.

        Every task of the origin that succeeded is cloned, by reference (its artifacts are
        shared, not copied, and its code does not run again); failed, cancelled and
        unfinished tasks run, with everything after them. In a foreach, only the missing
        splits run, and the join sees every split in order. The new run reuses the origin's
        parameters (a resume takes none), records ``origin_run_id`` and runs the current
        class's steps: tasks are matched by step name and foreach index, and tasks of steps
        the class no longer has are ignored. Cancellation works as for :meth:`run`.

        :param run_id: the run to resume (``"12"`` or ``12``); None for the flow's latest run
            in the store, whatever its status.
        :param step: also re-run this step and every step reachable from it, even where the
            origin succeeded.
        :raises NotFoundError: no such run (the message lists the flow's runs) or no such
            step (the message lists the flow's steps); nothing ran.
        :raises FlowValidationError: the flow definition is wrong (nothing ran).
        :raises StepFailed: a step raised; ``.run`` is the failed (resumed) run,
            ``__cause__`` the step's exception.
        :raises UsageError: given anything else: ``max_passes`` and the other run options
            go to the constructor, ``XFlow(max_passes=N).resume()`` (a resume does not keep
            the origin's).
        """
        with IMPORTS:
            from ._runtime._run import ResumeRequest
            from ._spec._resolve import refuse_run_options

        if given:
            refuse_run_options(type(self).__name__, "resume", given, {})
            raise UsageError(
                f"{type(self).__name__}.resume() takes run_id and step, not "
                f"{', '.join(map(repr, given))}; a resume reuses the origin's parameters.",
                next(iter(given)),
            )
        return await self._af_execute({}, ResumeRequest(run_id, step))

    async def spin(
        self,
        step: str,
        *,
        run_id: str | int,
        task: str | int | None = None,
        archive: str | os.PathLike[str] | None = None,
        trust: bool = False,
    ) -> SpinResult:
        """Run one task of a stored run again, here, with this class's current code for its
        step: to iterate on a step, or to debug a failed task, without running the flow.

        The task starts from what it started from in run ``run_id``: its parent task's
        artifacts (a join: every parent task's), its foreach element and index, and the
        run's parameters, read from this flow's store (or from ``archive``, a run archive
        read in place, not imported). Nothing is written: the stored run, and the file, stay
        as they were. ``self.next(...)`` is checked and recorded in the result, and nothing
        runs after the task. One attempt: ``@retry``, ``@catch`` and ``@timeout`` do not
        apply; every step runs in this process (a plain one in a worker thread), whatever its
        ``@executor``, with its ``@environment`` variables set here while it runs. With
        ``echo`` (the default), the task's output is printed as it runs.

        :param step: the step to run.
        :param run_id: the run whose task to run again (``"12"`` or ``12``).
        :param task: the task id; may be left out when the step has one task in that run.
        :param archive: read the run from this run archive instead of the store.
        :param trust: load the run's pickled values whoever signed them, provided their
            bytes are intact, as ``Flow(name, store, trust=True)`` does: for a run archive
            (an exported run is not signed with your key) or a store whose author you trust.
            Unpickling runs code. msgpack and numpy values load either way.
        :returns: what the task set or changed (``.artifacts``, name to value), its
            ``.stdout`` and ``.stderr``, and the steps its ``self.next`` named (``.next``).
        :raises StepFailed: the step raised (``__cause__``); ``.run`` is the stored run,
            unchanged, and ``.pathspec`` the task spun.
        :raises NotFoundError: no such run, step or task, or what the task started from is
            not stored (the message lists what exists).
        :raises UsageError: ``run_id`` is not a run id, or the step has several tasks and
            ``task`` is None (the message lists their ids).
        :raises FlowValidationError: the flow definition is wrong.
        :raises UntrustedArtifactError: an input is a pickle nobody vouches for.
        """
        with IMPORTS:
            import anyio.to_thread

            from ._client import Run
            from ._runtime._spin import spin_run_id, spin_task

        graph = FlowSpec._af_graph_cache.get(type(self))
        if graph is None:
            graph = await anyio.to_thread.run_sync(type(self)._af_graph)
        path = self._af_options.store_path if archive is None else os.fspath(archive)
        number = spin_run_id(graph.name, run_id)
        echo = self._af_options.echo
        result = await spin_task(
            type(self),
            graph,
            path,
            number,
            step,
            task,
            echo=echo,
            trust=trust,
            archive=archive is not None,
        )
        if result.error is not None:
            error = result.error
            run = await Run.aopen(f"{graph.name}/{number}", path)  # no connection kept open
            raise StepFailed(
                f"step {step!r} failed when spun from task {result.pathspec}: "
                f"{type(error).__name__}: {str(error).rstrip('.')}. The stored run is "
                "unchanged; fix the step and spin it again.",
                run,
                result.pathspec,
            ) from error
        return result

    def stream(self, **params: Any) -> RunStream:
        """Run the flow once, yielding its events (``asyncflow.events``) as they happen, in
        order, from ``RunStarted`` to ``RunFinished``.

        Use it as ``async with flow.stream(**params) as events: async for ev in events:``.
        Leaving the block (or the loop: ``break``, an exception) before ``RunFinished``
        cancels the run, records it ``cancelled`` (resumable) and returns once that is
        recorded. A bare ``async for ev in flow.stream()`` works too; call ``aclose()`` (or
        wrap it in ``contextlib.aclosing``) to have a ``break`` wait for the cancellation.
        A failed step does not raise: ``RunFinished.status`` is ``"failed"``.

        :param params: as for :meth:`run`.
        :raises FlowValidationError: raised by the iteration, as by :meth:`run`.
        :raises ParameterError: raised by the iteration, as by :meth:`run`.
        :raises UsageError: raised by the iteration: a run option (``max_passes=...``) given
            here rather than to the constructor, as by :meth:`run`.
        """
        with IMPORTS:
            from ._runtime._stream import RunStream
            from ._spec._resolve import parameters_of, refuse_run_options

        async def execute(hub: Any) -> Any:
            refuse_run_options(type(self).__name__, "stream", params, parameters_of(type(self)))
            return await self._af_execute(params, events=hub)

        return RunStream(execute)

    async def _af_execute(
        self,
        params: Mapping[str, Any],
        resume: ResumeRequest | None = None,
        on_start: Callable[[int], None] | None = None,
        events: RunEvents | None = None,
    ) -> Run:
        """Run or resume; ``on_start`` gets the run id as soon as the run is recorded."""
        return self._af_outcome(await self._af_run_result(params, resume, on_start, events))

    async def _af_run_result(
        self,
        params: Mapping[str, Any],
        resume: ResumeRequest | None = None,
        on_start: Callable[[int], None] | None = None,
        events: RunEvents | None = None,
    ) -> RunResult:
        """Run or resume, and return the runtime's record of the run (the command line reads
        it without importing the client, which a successful run from a flow file never uses:
        ~8 ms of a hello world's start-up)."""
        with IMPORTS:
            import anyio.to_thread

            from ._runtime._run import execute_run

        graph = FlowSpec._af_graph_cache.get(type(self))
        if graph is None:  # the first run of this class reads source files: not on the loop
            graph = await anyio.to_thread.run_sync(type(self)._af_graph)
        return await execute_run(
            type(self),
            graph,
            params,
            self._af_options,
            resume=resume,
            on_start=on_start,
            source=FlowSpec._af_source_cache.get(type(self)),
            events=events,
        )

    def _af_outcome(self, result: RunResult) -> Run:
        """The client's Run of a finished run; :class:`StepFailed` if a task failed."""
        with IMPORTS:
            from ._client import Run
            from ._client._handle import StoreHandle

        run = Run._make(StoreHandle(self._af_options.store_path), result.row)
        if result.failure is not None:
            error = result.failure.error
            pathspec = result.failed_pathspec()
            raise StepFailed(
                f"step {result.failure.spec.step!r} failed in task {pathspec}: "
                f"{type(error).__name__}: {str(error).rstrip('.')}. "
                f"The task's traceback is stored (see it with "
                f"`asyncflow show {pathspec}{store_option(self._af_options.store_path)}`); "
                "fix the step, then resume the run "
                f"({RESUME_HINT}) or run it again.",
                run,
                pathspec,
            ) from error
        return run

    @classmethod
    def main(cls, argv: Sequence[str] | None = None) -> NoReturn:
        """Command line of a flow file: ``python flow.py run|resume|show|check ...``.

        :raises UsageError: called with an event loop running in this thread (a notebook
            cell, a coroutine): there, ``run = await XFlow().run()`` runs the flow.
        """
        if loop_running():
            raise UsageError(
                f"{cls.__name__}.main() runs the command line, which needs an event loop of "
                "its own, and one is running here (a notebook cell or a coroutine); run the "
                f"flow with `run = await {cls.__name__}().run(...)` instead (it takes the "
                "parameters as keyword arguments).",
                "main",
            )
        with IMPORTS:
            from ._cli import flow_main

        raise SystemExit(flow_main(cls, argv))


def _config_values(config: Mapping[str, Any] | None) -> dict[str, Any]:
    if config is None:
        return {}
    if not isinstance(config, Mapping) or not all(isinstance(k, str) for k in config):
        raise UsageError(
            f"config must map each Config's name to its value (a dict or JSON text), such as "
            f'config={{"cfg": {{"lr": 0.1}}}}, not {config!r}.',
            "config",
        )
    return dict(config)


@functools.cache
def _defaults() -> dict[str, Any]:
    # The constructor's own defaults, read from its signature (one list, not two).
    params = inspect.signature(FlowSpec.__init__).parameters
    return {name: p.default for name, p in params.items() if name != "self"}


def _no_arguments(given: dict[str, Any]) -> bool:
    """Whether the constructor's arguments (its ``locals()``) are all left at their defaults."""
    return all(given.get(name) == default for name, default in _defaults().items())
