"""``FlowMutator`` and ``StepMutator``: Metaflow's mutators (``metaflow.user_decorators``),
importable so a Metaflow flow file imports, and refused with one clear error when used.

Why they are refused rather than half-supported: a Metaflow mutator rewrites a flow's
decorators and parameters through ``MutableFlow`` / ``MutableStep`` — decorator objects it can
list (``decorator_specs``), add by name (``"retry:times=3"``), remove, and Config values it
reads — at points of Metaflow's command line (after configs are read, after ``--with`` is
parsed). asyncflow has none of that: a decorator is applied once, while the class body runs,
into the step's frozen description, there are no decorator objects to list or name and no
Configs. A partial imitation would run a mutator's code against a different model and change
flows silently, so using one is a :class:`FlowValidationError` at class definition instead,
naming what to do: apply the decorators directly.
"""

from __future__ import annotations

import inspect
from typing import Any, NoReturn

from .._errors import FlowValidationError

__all__ = ["FlowMutator", "StepMutator"]

_WHY = (
    "asyncflow does not support Metaflow's mutators: its decorators are applied once, while "
    "the class body runs, to the steps they sit on, and it has no decorator objects or "
    "Configs for a mutator to list, add, remove or read"
)


def _target(obj: object) -> str:
    if inspect.isclass(obj):
        return f"flow {obj.__qualname__} (module {obj.__module__})"
    code = getattr(obj, "__code__", None)
    name = getattr(obj, "__qualname__", None) or repr(obj)
    where = f" ({code.co_filename}:{code.co_firstlineno})" if code is not None else ""
    return f"step {name}{where}"


def _is_target(obj: object) -> bool:
    return inspect.isclass(obj) or inspect.isfunction(obj)


class _Mutator:
    _kind = "mutator"
    _fix = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Bare use (``@MyMutator`` above a class or a step) passes the target itself.
        if args and _is_target(args[0]):
            self._refuse(args[0])
        self._args = args
        self._kwargs = kwargs

    def __call__(self, target: object = None) -> NoReturn:
        self._refuse(target)

    def _refuse(self, target: object) -> NoReturn:
        on = f" on {_target(target)}" if target is not None else ""
        raise FlowValidationError(
            f"{self._kind} {type(self).__name__} is used{on}: {_WHY}. {self._fix}",
            getattr(target, "__name__", None) if inspect.isfunction(target) else None,
        )

    # The methods a Metaflow mutator overrides, so a subclass defines without error.
    def init(self, *args: Any, **kwargs: Any) -> None:
        """Metaflow calls this with the mutator's arguments; asyncflow never does."""

    def pre_mutate(self, mutable: Any) -> None:
        """Metaflow's first mutation hook; asyncflow never calls it."""

    def mutate(self, mutable: Any) -> None:
        """Metaflow's second mutation hook; asyncflow never calls it."""


class FlowMutator(_Mutator):
    """Metaflow's flow mutator. Subclassing it works; applying a subclass to a flow class
    raises :class:`FlowValidationError` (asyncflow cannot mutate a flow after its class body
    ran). Instead, apply the decorators and ``Parameter``s the mutator would add directly."""

    _kind = "FlowMutator"
    _fix = (
        "Write what the mutator would add directly: the decorators above @step on each step "
        "and the Parameters in the class body (a plain Python function may apply the same "
        "decorators to several steps before the class is defined)."
    )


class StepMutator(_Mutator):
    """Metaflow's step mutator. Subclassing it works; applying a subclass to a step raises
    :class:`FlowValidationError`. Instead, stack the decorators it would add above ``@step``."""

    _kind = "StepMutator"
    _fix = (
        "Stack the decorators the mutator would add above @step instead, e.g. "
        "@retry(times=3) then @step."
    )
