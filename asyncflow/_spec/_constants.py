"""The rule that keeps a class attribute from hiding an artifact, checked before a run.

A class attribute that is not a parameter is a constant of the flow (see
:func:`._flowbase.class_constant`): if a step set ``self.<name>`` to a new value, every later
step would still read the class's value. Setting one fails the task (``FlowBase.__setattr__``);
this module finds the assignments written in a step's source (``self.x = ...``,
``self.x += 1``) and a ``@catch(var=...)`` naming a constant, so that the flow is refused
before anything runs.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping

from .._errors import FlowValidationError
from ._flowbase import class_constant
from ._step import StepInfo
from ._stepsource import ParsedDef, parse_step

__all__ = ["constant_writes"]


def constant_writes(
    flow_cls: type, steps: Iterable[StepInfo], parsed: Mapping[str, ParsedDef] | None = None
) -> list[FlowValidationError]:
    """One problem per step that sets a class constant of ``flow_cls`` (its first such line).

    :param parsed: steps' defs already parsed (by name), as :func:`._stepsource.parse_step`
        gives them; the others are read and parsed here.
    """
    problems: list[FlowValidationError] = []
    name = flow_cls.__name__
    for info in steps:
        var = info.catch.var if info.catch is not None else None
        if var is not None and class_constant(flow_cls, var):
            problems.append(_problem(info, info.where, var, name, f"@catch(var={var!r}) sets"))
            continue
        found = parsed.get(info.name) if parsed is not None else None
        if found is None:
            found = parse_step(info)
        if found is None:
            continue  # unreadable source: build_graph says so
        func, first = found
        for node in _stores(func, _self_name(func)):
            if class_constant(flow_cls, node.attr):
                where = f"{info.file}:{node.lineno + first - 1}"
                problems.append(_problem(info, where, node.attr, name, "the step sets"))
                break
    return problems


def _self_name(func: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> str:
    params = func.args.posonlyargs + func.args.args
    return params[0].arg if params else "self"


def _stores(func: ast.FunctionDef | ast.AsyncFunctionDef, self_name: str) -> list[ast.Attribute]:
    """Every ``<self>.<name> = ...`` (or ``+=``) in the step, in source order; a nested class,
    or a nested function that names its own ``self``, has another ``self``."""
    found: list[ast.Attribute] = []
    todo: list[ast.AST] = list(reversed(func.body))
    while todo:
        node = todo.pop()
        if isinstance(node, ast.ClassDef):
            continue
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            args = node.args
            names = {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)}
            if self_name in names:
                continue
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id == self_name
        ):
            found.append(node)
        todo.extend(reversed(list(ast.iter_child_nodes(node))))
    return found


def _problem(info: StepInfo, where: str, attr: str, flow: str, what: str) -> FlowValidationError:
    return FlowValidationError(
        f"Step '{info.name}' at {where}: {what} self.{attr}, but '{attr}' is a class attribute "
        f"of {flow}, a constant that every step reads from the class, so later steps would "
        f"never see the new value; remove '{attr}' from the class to make it an artifact, or "
        f"store the value under another name, such as self.{attr}_value.",
        info.name,
    )
