"""Decorator arguments given as ``config_expr(...)``: kept pending on the step when the class
is defined, applied to each run's own graph when its configs are known (``_override``).

Only the decorators listed in :data:`DEFERRABLE` take config_expr arguments; each calls
:func:`defer` first, which answers None when no argument is a config_expr.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from .._errors import FlowValidationError
from ._config import ConfigExpr
from ._step import STEP_ATTR, decorated_step

__all__ = ["DEFERRABLE", "PendingDecorator", "defer"]


@dataclasses.dataclass(frozen=True, slots=True)
class PendingDecorator:
    """A decorator of a step with a config_expr argument, applied when a run starts."""

    name: str
    arguments: tuple[tuple[str, Any], ...]
    text: str  # as written, for messages: @retry(times=config_expr('cfg.retries'))

    def from_configs(self) -> frozenset[str]:
        """The names of the arguments given as config_expr."""
        return frozenset(k for k, v in self.arguments if isinstance(v, ConfigExpr))

    def resolved(self, configs: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments with each config_expr evaluated against ``configs``."""
        return {
            k: v.evaluate(configs) if isinstance(v, ConfigExpr) else v for k, v in self.arguments
        }


#: The decorators whose arguments may be config_expr(...), and the StepInfo field each sets.
DEFERRABLE: dict[str, str] = {
    "retry": "retry",
    "catch": "catch",
    "timeout": "timeout",
    "resources": "resources",
    "environment": "environment",
    "kubernetes": "compute",
    "batch": "compute",
    "executor": "executor",
}

_COMPUTE = ("kubernetes", "batch")


def defer(decorator: str, arguments: Mapping[str, Any]) -> Callable[[Any], Any] | None:
    """For a decorator given a config_expr argument, what keeps it pending on its step
    (applied to the run's graph when the run starts, see ``_override``); None otherwise.

    :raises FlowValidationError: the step has the decorator twice.
    """
    if not any(isinstance(v, ConfigExpr) for v in arguments.values()):
        return None
    shown = ", ".join(f"{k}={v!r}" for k, v in arguments.items() if isinstance(v, ConfigExpr))
    pending = PendingDecorator(decorator, tuple(arguments.items()), f"@{decorator}({shown})")

    def apply(func: Any) -> Any:
        info = decorated_step(func, decorator)
        if decorator in _COMPUTE:  # one compute layer a step: @kubernetes or @batch
            other = info.compute.name if info.compute is not None else None
            other = other or next((p.name for p in info.pending if p.name in _COMPUTE), None)
            if other is not None and other != decorator:
                raise FlowValidationError(
                    f"step {info.name!r} ({info.where}) has both @{other} and @{decorator}; "
                    "keep one (as Metaflow requires).",
                    info.name,
                )
        if getattr(info, DEFERRABLE[decorator]) is not None or any(
            p.name == decorator for p in info.pending
        ):
            raise FlowValidationError(
                f"step {info.name!r} ({info.where}) has @{decorator} twice; keep one.", info.name
            )
        setattr(func, STEP_ATTR, dataclasses.replace(info, pending=(*info.pending, pending)))
        return func

    return apply
