"""``@retry``, ``@catch``, ``@timeout`` (failure policies) and ``@executor``, above ``@step``.

Each records its settings on the step's frozen :class:`StepInfo`; the runtime applies them.
As in Metaflow, ``@retry`` and ``@catch`` may be written bare (without parentheses) and then
take their defaults; ``@timeout`` and ``@executor`` have no sensible default, so bare they are
refused with a message naming the arguments to give.
Misuse (above something that is not a step, twice on one step, nonsensical values) is a
:class:`FlowValidationError` raised while the class body runs, so before any run.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, TypeVar, overload

from .._errors import FlowValidationError
from ._config_deco import defer
from ._names import is_plain_name
from ._placement import check_placement
from ._settings import CatchPolicy, RetryPolicy
from ._step import STEP_ATTR, StepInfo, decorated_step

__all__ = ["EXECUTORS", "catch", "executor", "retry", "timeout"]

#: Where a plain step may run: worker threads of this process (the default), a pool of
#: worker processes on this machine, or Dask workers.
EXECUTORS = ("thread", "process", "dask")

F = TypeVar("F", bound=Callable[..., Any])


def _attach(func: Any, decorator: str, field: str, value: Any) -> Any:
    info = decorated_step(func, decorator)
    if getattr(info, field) is not None:
        raise FlowValidationError(
            f"step {info.name!r} ({info.where}) has @{decorator} twice; keep one.",
            info.name,
        )
    changes: dict[str, Any] = {field: value}
    new = dataclasses.replace(info, **changes)
    check_placement(new)  # @executor("thread") above @environment
    setattr(func, STEP_ATTR, new)
    return func


def _is_bare(first: object) -> bool:
    """Whether a decorator's first argument is the decorated function itself (``@retry``
    written without parentheses) rather than a setting."""
    return callable(first)


def _target(func: object) -> str:
    """How an error names what a bare decorator was written on."""
    info = getattr(func, STEP_ATTR, None)
    if isinstance(info, StepInfo):
        return f"step {info.name!r} ({info.where})"
    return repr(getattr(func, "__name__", func))


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise FlowValidationError(f"{what} must be a number, not {value!r}.")
    return float(value)


@overload
def retry(times: F, /) -> F: ...
@overload
def retry(times: int = 3, minutes_between_retries: float = 0) -> Callable[[F], F]: ...
def retry(times: Any = 3, minutes_between_retries: float = 0) -> Any:
    """Re-run a failing task up to ``times`` more times, from its parent's artifacts.

    ``current.retry_count`` tells the attempt (0 first). A failed attempt's artifacts are
    never seen by the next attempt or downstream. Bare ``@retry`` means ``@retry()``.

    :param times: extra attempts after the first (0 disables retrying).
    :param minutes_between_retries: pause between attempts (fractions allowed).
    :raises FlowValidationError: negative or non-integer ``times``, negative pause.
    """
    if _is_bare(times):
        return retry()(times)
    later = defer("retry", {"times": times, "minutes_between_retries": minutes_between_retries})
    if later is not None:
        return later
    if isinstance(times, bool) or not isinstance(times, int) or times < 0:
        raise FlowValidationError(
            f"@retry(times={times!r}): times must be a whole number >= 0 (extra attempts)."
        )
    pause = _number(minutes_between_retries, "@retry(minutes_between_retries=...)")
    if pause < 0 or math.isinf(pause):
        raise FlowValidationError(
            f"@retry(minutes_between_retries={minutes_between_retries!r}) must be >= 0 and finite."
        )
    policy = RetryPolicy(times, pause)
    return lambda func: _attach(func, "retry", "retry", policy)


@overload
def catch(var: F, /) -> F: ...
@overload
def catch(var: str | None = None, print_exception: bool = True) -> Callable[[F], F]: ...
def catch(var: Any = None, print_exception: bool = True) -> Any:
    """When the task still fails after its retries, keep going instead of failing the run.

    ``self.<var>`` is then an object describing the failure (``type``, ``message``,
    ``traceback``), or None when the task succeeds; artifacts set before the failure are kept
    and the flow continues to the step's next steps. Bare ``@catch`` means ``@catch()``.

    :param var: the artifact that receives the failure description (optional).
    :param print_exception: also print the traceback to the task's stderr.
    :raises FlowValidationError: ``var`` is not a valid artifact name.
    """
    if _is_bare(var):
        return catch()(var)
    later = defer("catch", {"var": var, "print_exception": print_exception})
    if later is not None:
        return later
    if var is not None and (not is_plain_name(var) or var.startswith("_")):
        raise FlowValidationError(
            f"@catch(var={var!r}): var must name an artifact (an identifier not starting with '_')."
        )
    policy = CatchPolicy(var, bool(print_exception))
    return lambda func: _attach(func, "catch", "catch", policy)


def timeout(seconds: float = 0, minutes: float = 0, hours: float = 0) -> Callable[[F], F]:
    """Fail a task that runs longer than ``seconds + minutes + hours`` with a TimeoutError.

    A coroutine step is cancelled at the deadline. A plain step's thread cannot be
    interrupted: the task fails at the deadline, the thread runs on in the background, and
    whatever it produces is discarded (see the README on making long plain steps cancellable).

    Bare ``@timeout`` is refused, as Metaflow refuses it: there is no default duration.

    :raises FlowValidationError: the total is zero, negative or not a number; written bare.
    """
    if _is_bare(seconds):
        raise FlowValidationError(
            f"@timeout is written without a duration on {_target(seconds)}; write "
            "@timeout(seconds=...), @timeout(minutes=...) or @timeout(hours=...) (they add up)."
        )
    later = defer("timeout", {"seconds": seconds, "minutes": minutes, "hours": hours})
    if later is not None:
        return later
    total = (
        _number(seconds, "@timeout(seconds=...)")
        + 60 * _number(minutes, "@timeout(minutes=...)")
        + 3600 * _number(hours, "@timeout(hours=...)")
    )
    if not total > 0 or math.isinf(total):
        raise FlowValidationError(
            f"@timeout(seconds={seconds!r}, minutes={minutes!r}, hours={hours!r}) gives a "
            f"total of {total}; give a positive, finite duration."
        )
    return lambda func: _attach(func, "timeout", "timeout", total)


def executor(name: str) -> Callable[[F], F]:
    """Run this plain step's tasks on the executor ``name``, whatever the flow's default.

    ``"thread"``: worker threads of this process. ``"process"``: a pool of worker processes
    on this machine (CPU-bound Python code, code that must not share the host's GIL).
    ``"dask"``: the workers of a Dask cluster (``pip install 'asyncflow[dask]'``).
    Coroutine (``async def``) steps always run on the event loop.

    :raises FlowValidationError: an unknown name, or an ``async def`` step; written bare.
    """
    later = defer("executor", {"name": name})  # config_expr("cfg.executor")
    if later is not None:
        return later
    if _is_bare(name):
        raise FlowValidationError(
            f"@executor is written without an executor's name on {_target(name)}; write "
            f"@executor(...) with one of {', '.join(map(repr, EXECUTORS))}, "
            'e.g. @executor("process").'
        )
    if name not in EXECUTORS:
        raise FlowValidationError(
            f"@executor({name!r}): the executor must be one of {', '.join(map(repr, EXECUTORS))}."
        )

    def apply(func: F) -> F:
        info = getattr(func, STEP_ATTR, None)
        if isinstance(info, StepInfo) and info.is_async:
            raise FlowValidationError(
                f"@executor({name!r}) is on step {info.name!r} ({info.where}), an async def "
                "step: coroutine steps always run on the event loop. Make it a plain def to "
                "run it elsewhere, or remove @executor.",
                info.name,
            )
        return _attach(func, "executor", "executor", name)  # type: ignore[no-any-return]

    return apply
