"""Switches and loops at run time: which case a switch takes, and the guard on loop passes.

A switch task picks its one next step when it finishes (:func:`choose_case`), from the value
of its condition artifact; the scheduler then starts only that step. A step that a switch
leads back to runs again as a new task, its next *pass* (``TaskSpec.pass_index``); a run
refuses to start a task past ``max_passes`` passes (:func:`too_many_passes`), so a loop that
never ends fails instead of filling the store.
"""

from __future__ import annotations

from typing import Any

from .._errors import FlowValidationError
from .._spec._flowgraph import Node
from ._limits import DEFAULT_MAX_PASSES

__all__ = [
    "DEFAULT_MAX_PASSES",
    "case_key",
    "choose_case",
    "missing_condition",
    "too_many_passes",
]


def case_key(value: Any) -> str:
    """The text a condition value is matched against a switch's cases by: ``str(value)``,
    so ``True`` matches ``"True"`` and ``3`` matches ``"3"``."""
    return value if isinstance(value, str) else str(value)


def choose_case(node: Node, value: Any, where: str) -> str:
    """The step the switch ``node`` leads to when its condition artifact is ``value``.

    :raises FlowValidationError: ``value`` matches none of the cases, or its ``str()`` raised.
    """
    try:
        key = case_key(value)
    except Exception as exc:  # the value's own __str__ raised
        raise FlowValidationError(
            f"{where} has condition={node.condition!r}, and str(self.{node.condition}) raised "
            f"{type(exc).__name__}: {exc} while choosing the switch's case (the value is "
            f"matched as its str()); set self.{node.condition} to a value whose str() works, "
            "such as a str, an int or a bool.",
            node.name,
        ) from exc
    for case, target in node.cases:
        if case == key:
            return target
    choices = ", ".join(repr(case) for case, _ in node.cases)
    shown = repr(value)
    if len(shown) > 200:
        shown = shown[:197] + "..."
    raise FlowValidationError(
        f"{where} has condition={node.condition!r}, but self.{node.condition} is {shown}, "
        f"which matches none of the cases ({choices}); set it to one of them (the value is "
        f"matched as str(self.{node.condition})), or add a case for it.",
        node.name,
    )


def missing_condition(node: Node, where: str) -> FlowValidationError:
    """The error of a switch whose condition artifact was never set."""
    choices = ", ".join(repr(case) for case, _ in node.cases)
    return FlowValidationError(
        f"{where} has condition={node.condition!r}, but no artifact {node.condition!r} "
        f"exists; set self.{node.condition} to one of the cases ({choices}) before calling "
        "self.next().",
        node.name,
    )


def too_many_passes(
    flow: str, step: str, limit: int, pass_index: int, path: tuple[int, ...] = ()
) -> FlowValidationError:
    """The error of a task that would be pass ``pass_index`` (0-based) of its step, past the
    run's ``limit``; ``path`` is its foreach indexes (named in the message, when inside one)."""
    where = ""
    if len(path) == 1:
        where = f" in foreach index {path[0]}"
    elif path:
        where = f" in foreach indexes {', '.join(map(str, path))}"
    passes = "1 pass" if limit == 1 else f"{limit} passes"
    return FlowValidationError(
        f"step {step!r} of {flow}{where} would start its pass {pass_index + 1}, but a run "
        f"allows {passes} of a step (max_passes); if the loop is meant to go on, raise the "
        f"limit: {flow}(max_passes=N), or `python flow.py run --max-passes N` (a resume does "
        "not keep the limit: give it again, `resume --max-passes N`); else check the condition "
        "that should end the loop.",
        step,
    )
