"""``FlowSpec``: the class users subclass. Defines steps, runs them, and has a CLI."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, NoReturn

import anyio.to_thread

from ._client import Run
from ._client._handle import StoreHandle
from ._errors import StepFailed
from ._runtime._run import DEFAULT_MAX_WORKERS, RunOptions, execute_run
from ._spec._flowbase import FlowBase
from ._spec._graph import FlowGraph, build_graph
from ._store._cache import DEFAULT_CACHE_BYTES
from ._store._paths import resolve_store_path

__all__ = ["FlowSpec"]


class FlowSpec(FlowBase):
    """Base class of a flow. Subclass it, write ``@step`` methods, then ``await flow.run()``.

    :param store: path of the SQLite file holding every run (default: ``$ASYNCFLOW_STORE``,
        else ``asyncflow.db`` in the current directory).
    :param max_workers: how many tasks may run at once (default 16).
    :param tags: tags recorded on every run started from this object.
    :param cache_bytes: bound of the in-memory cache of loaded artifact bytes
        (default 256 MiB).
    :param echo: also print each task's output to the terminal, prefixed with its pathspec.
    :raises ValueError: ``max_workers`` is not a positive integer.
    """

    _af_graph_cache: ClassVar[dict[type, FlowGraph]] = {}

    def __init__(
        self,
        store: str | os.PathLike[str] | None = None,
        *,
        max_workers: int = DEFAULT_MAX_WORKERS,
        tags: Iterable[str] = (),
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        echo: bool = True,
    ) -> None:
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError(
                f"max_workers must be a positive integer, not {max_workers!r}; "
                f"leave it out for the default of {DEFAULT_MAX_WORKERS}."
            )
        if isinstance(tags, str):
            tags = (tags,)
        self._af_options = RunOptions(
            store_path=resolve_store_path(store),
            max_workers=max_workers,
            tags=tuple(str(t) for t in tags),
            echo=echo,
            cache_bytes=cache_bytes,
        )

    # Few public names here: every attribute of the class hides an artifact of that name.
    @classmethod
    def _af_graph(cls) -> FlowGraph:
        """The flow's validated graph (built once per class).

        :raises FlowValidationError: the flow definition breaks a rule.
        """
        cached = FlowSpec._af_graph_cache.get(cls)
        if cached is None:
            # Reads every step's source once; the caller may run this in a thread.
            cached = build_graph(cls)
            FlowSpec._af_graph_cache[cls] = cached
        return cached

    async def run(self, **params: Any) -> Run:
        """Run the flow once and return the finished :class:`Run`.

        :param params: parameter values by parameter name (IncludeFiles take a path).
        :raises FlowValidationError: the flow definition is wrong (nothing ran).
        :raises ParameterError: a parameter is unknown, missing or invalid (nothing ran).
        :raises StepFailed: a step raised; ``.run`` is the failed run, ``__cause__`` the
            step's exception.
        """
        graph = FlowSpec._af_graph_cache.get(type(self))
        if graph is None:  # the first run of this class reads source files: not on the loop
            graph = await anyio.to_thread.run_sync(type(self)._af_graph)
        result = await execute_run(type(self), graph, params, self._af_options)
        run = Run(StoreHandle(self._af_options.store_path), result.row)
        if result.failure is not None:
            error = result.failure.error
            pathspec = result.failed_pathspec()
            raise StepFailed(
                f"step {result.failure.spec.step!r} failed in task {pathspec}: "
                f"{type(error).__name__}: {error}. The task's traceback is stored (see it with "
                f"`asyncflow show {pathspec}`); fix the step and run again.",
                run,
                pathspec,
            ) from error
        return run

    @classmethod
    def main(cls, argv: Sequence[str] | None = None) -> NoReturn:
        """Command line of a flow file: ``python flow.py run|show|check ...``."""
        from ._cli import flow_main

        raise SystemExit(flow_main(cls, argv))
