"""The ``@step`` decorator: marks a method as a step and records what the graph needs."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, overload

from .._errors import FlowValidationError

if TYPE_CHECKING:
    from ._config_deco import PendingDecorator
    from ._settings import CardSpec, CatchPolicy, Compute, PackageRequest, Resources, RetryPolicy

__all__ = ["STEP_ATTR", "StepInfo", "decorated_step", "step", "step_info"]

STEP_ATTR = "__asyncflow_step__"

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class StepInfo:
    """What ``@step`` learns about a method, once, at class definition time."""

    name: str
    func: Callable[..., Any]
    is_async: bool
    is_join: bool  # the method takes ``inputs``
    file: str
    line: int
    # Failure policies, set by @retry / @catch / @timeout stacked above @step.
    retry: RetryPolicy | None = None
    catch: CatchPolicy | None = None
    timeout: float | None = None  # seconds
    executor: str | None = None  # set by @executor: "thread", "process" or "dask"
    # @step(start=True) / @step(end=True): the flow's first / last step whatever its name
    # (which step is first and last is decided in one place: _ends.terminal_steps).
    marked_start: bool = False
    marked_end: bool = False
    packages: tuple[PackageRequest, ...] = ()  # set by @conda / @pypi
    cards: tuple[CardSpec, ...] = ()  # set by @card, one per decorator
    # Where and how (``_placement``): @resources, @environment's variables, @kubernetes/@batch.
    resources: Resources | None = None
    environment: tuple[tuple[str, str], ...] | None = None
    compute: Compute | None = None
    # Decorators given config_expr(...) arguments, applied to each run's graph (_override).
    pending: tuple[PendingDecorator, ...] = ()

    @property
    def where(self) -> str:
        """``file:line`` of the step's ``def``, for error messages."""
        return f"{self.file}:{self.line}"


@overload
def step(func: F, /) -> F: ...


@overload
def step(*, start: bool = False, end: bool = False) -> Callable[[F], F]: ...


def step(func: Any = None, /, *, start: bool = False, end: bool = False) -> Any:
    """Mark a method of a :class:`FlowSpec` as a step.

    ``async def`` steps run on the event loop; plain ``def`` steps run in worker threads.
    A step that takes a second parameter (``def join(self, inputs)``) is a join.

    Written bare (``@step``) or called (``@step()``, ``@step(start=True)``). As in Metaflow
    2.19, ``start=True`` makes the step the flow's first step and ``end=True`` its last, so
    they need not be named ``start`` and ``end``; one step may be both (a one-step flow).

    :raises FlowValidationError: if the decorated object is not a function taking ``self``
        and optionally ``inputs``, or ``start``/``end`` is not True or False.
    """
    for label, value in (("start", start), ("end", end)):
        if not isinstance(value, bool):
            raise FlowValidationError(
                f"@step({label}={value!r}): {label}= takes True or False; write "
                f"@step({label}=True) on the flow's {'first' if label == 'start' else 'last'} "
                "step, or leave it out.",
            )
    if func is None:
        return lambda f: _make_step(f, start, end)
    return _make_step(func, start, end)


def _make_step(func: Any, start: bool, end: bool) -> Any:
    if not inspect.isfunction(func):
        raise FlowValidationError(
            f"@step decorates a method defined with def or async def, not {func!r}; "
            "put @step directly above the def line (other decorators go above it).",
        )
    code = func.__code__
    file, line = code.co_filename, code.co_firstlineno
    params = list(inspect.signature(func).parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(params) != len(positional) or not 1 <= len(positional) <= 2:
        raise FlowValidationError(
            f"Step '{func.__name__}' at {file}:{line} must take (self) or, for a join, "
            "(self, inputs); remove the other parameters.",
            func.__name__,
        )
    info = StepInfo(
        name=func.__name__,
        func=func,
        is_async=inspect.iscoroutinefunction(func),
        is_join=len(positional) == 2,
        file=file,
        line=line,
        marked_start=start,
        marked_end=end,
    )
    setattr(func, STEP_ATTR, info)
    return func


def step_info(obj: object) -> StepInfo | None:
    """The :class:`StepInfo` of a step function or bound step method, else None."""
    target = getattr(obj, "__func__", obj)
    info = getattr(target, STEP_ATTR, None)
    return info if isinstance(info, StepInfo) else None


def decorated_step(func: object, decorator: str) -> StepInfo:
    """The :class:`StepInfo` of ``func``, which the decorator ``@decorator`` (stacked above
    ``@step``) is being applied to.

    :raises FlowValidationError: ``func`` is not a step (the decorator is below ``@step``, or
        on a plain function).
    """
    info = getattr(func, STEP_ATTR, None)
    if not isinstance(info, StepInfo):
        raise FlowValidationError(
            f"@{decorator} is applied to {getattr(func, '__name__', func)!r}, which is not a "
            f"step; put @{decorator} above @step (decorators apply bottom-up).",
        )
    return info
