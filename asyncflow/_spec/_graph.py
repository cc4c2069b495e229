"""The flow graph: every step, how it leaves, and how splits pair with their joins.

:func:`build_graph` finds the ``@step`` methods of a class (base classes included), reads each
step's source once to find its trailing ``self.next(...)``, derives the split/join structure
and validates it (:mod:`._validate`). The result is an immutable
:class:`._flowgraph.FlowGraph`; callers cache it per class. Rules about *how* ``self.next`` is
written (last statement, literal targets, literal ``foreach=``) are checked here, while the
source is at hand; rules about the *shape* of the graph live in :mod:`._validate`.
"""

from __future__ import annotations

import ast
import inspect
from types import MappingProxyType
from typing import NamedTuple, TypeGuard

from .._errors import FlowValidationError
from ._constants import constant_writes
from ._flowgraph import FlowGraph, Node, NodeKind
from ._names import RESERVED_NAMES
from ._step import StepInfo, step_info
from ._stepsource import ParsedDef, attribute_loads, read_def
from ._trace import place_nodes
from ._validate import raise_problems, validate

__all__ = ["build_graph"]


def build_graph(flow_cls: type) -> FlowGraph:
    """Build and validate the graph of a flow class.

    :param flow_cls: any class whose steps are methods decorated with ``@step``.
    :raises FlowValidationError: a step's source cannot be read, its ``self.next`` is not
        written in a supported form, or the graph breaks a rule (see :mod:`._validate`).
    """
    problems: list[FlowValidationError] = []
    found = _collect_steps(flow_cls, problems)
    nodes: dict[str, Node] = {}
    parsed: dict[str, ParsedDef] = {}  # each step's source is read and parsed once
    for info in found:
        node = _read_node(info, problems, parsed)
        if node is not None:
            nodes[info.name] = node
    problems += constant_writes(flow_cls, (node.info for node in nodes.values()), parsed)
    if problems:
        raise_problems(flow_cls.__name__, problems)

    placed = place_nodes(nodes)
    own_doc = flow_cls.__dict__.get("__doc__")
    graph = FlowGraph(
        name=flow_cls.__name__,
        doc=inspect.cleandoc(own_doc) if isinstance(own_doc, str) else None,
        nodes=MappingProxyType(placed),
    )
    validate(graph)
    return graph


def _collect_steps(flow_cls: type, problems: list[FlowValidationError]) -> list[StepInfo]:
    """The steps of a class and its bases (an override wins), in definition order."""
    mro = flow_cls.__mro__
    # A name keeps the place where the most basic class defines it, so an override does not
    # move a step; base classes come first, then each class's body in order.
    place: dict[str, tuple[int, int]] = {}
    for depth, klass in enumerate(reversed(mro)):
        for position, attr in enumerate(vars(klass)):
            place.setdefault(attr, (depth, position))
    winners: dict[str, StepInfo] = {}
    seen: set[str] = set()
    for depth, klass in enumerate(mro):
        for attr, value in vars(klass).items():
            if attr in seen:
                continue
            seen.add(attr)
            info = step_info(value)
            if info is None:
                continue
            if info.name != attr:
                problems.append(
                    FlowValidationError(
                        f"Class attribute '{attr}' of {flow_cls.__name__} is the step "
                        f"'{info.name}' ({info.where}) under a second name; define every step "
                        "with its own def instead of assigning it to another name.",
                        attr,
                    )
                )
                continue
            hidden = next((b for b in mro[depth + 1 :] if attr in vars(b)), None)
            if hidden is not None and step_info(vars(hidden)[attr]) is None:
                if attr in RESERVED_NAMES:
                    winners[attr] = info  # the name rule says it better (validate)
                    continue
                problems.append(
                    FlowValidationError(
                        f"Step '{attr}' at {info.where}: the step hides the attribute '{attr}' "
                        f"of {hidden.__name__}, which the flow needs; rename the step.",
                        attr,
                    )
                )
                continue
            winners[attr] = info
    return [winners[attr] for attr in sorted(winners, key=place.__getitem__)]


def _read_node(
    info: StepInfo, problems: list[FlowValidationError], parsed: dict[str, ParsedDef]
) -> Node | None:
    """Parse the step's source (kept in ``parsed``) and describe its trailing ``self.next``;
    None on a problem."""
    name = info.name
    try:
        first, func = read_def(info.func, name)
    except (OSError, TypeError) as exc:
        problems.append(
            FlowValidationError(
                f"Cannot read the source of step '{name}' ({info.where}): {exc}. asyncflow "
                "reads each step's self.next(...) from its source, so define the flow in a file "
                "(or notebook cell) whose source Python can read.",
                name,
            )
        )
        return None
    if func is None:
        problems.append(
            FlowValidationError(
                f"Cannot find the def of step '{name}' in its source at {info.where}; if the "
                "file was edited after the flow was imported, import it again.",
                name,
            )
        )
        return None
    parsed[name] = (func, first)
    params = func.args.posonlyargs + func.args.args
    self_name = params[0].arg if params else "self"
    found = _trailing_next(func, self_name)
    line: int | None = None
    read: _Call | str = _Call((), None)
    if isinstance(found, tuple):
        line, read = found[0] + first - 1, found[1]
    elif found is not None:
        line, read = found.lineno + first - 1, _read_call(found, self_name)
    if isinstance(read, str):
        problems.append(FlowValidationError(f"Step '{name}' at {info.file}:{line}: {read}", name))
        return None
    out, foreach, condition, cases = read
    if foreach is not None:
        kind = NodeKind.FOREACH
    elif condition is not None:
        kind = NodeKind.SWITCH
    elif found is None:
        kind = NodeKind.END
    else:
        kind = NodeKind.SPLIT if len(out) > 1 else NodeKind.LINEAR
    doc = info.func.__doc__
    return Node(
        name=name,
        kind=kind,
        out=out,
        foreach_var=foreach,
        is_join=info.is_join,
        in_=(),
        join_kind=None,
        closes=None,
        matching_join=None,
        foreach_depth=0,
        split_parents=(),
        info=info,
        doc=inspect.cleandoc(doc) if doc else None,
        next_line=line,
        condition=condition,
        cases=cases,
        reads=attribute_loads(func) if info.is_async else None,
    )


def _trailing_next(
    func: ast.FunctionDef | ast.AsyncFunctionDef, self_name: str
) -> ast.Call | tuple[int, str] | None:
    """The step's closing ``self.next`` call, None if it has none, or (line, problem)."""
    body = func.body[1:] if _is_docstring(func.body[0]) else func.body
    calls = [n for stmt in body for n in ast.walk(stmt) if _is_next_call(n, self_name)]
    last = body[-1] if body else None
    trailing = None
    if isinstance(last, ast.Expr | ast.Return) and isinstance(last.value, ast.Call):
        trailing = last.value if last.value in calls else None
    if not calls or (trailing is not None and len(calls) == 1):
        return trailing
    stray = next(c for c in calls if c is not trailing)
    if not any(getattr(stmt, "value", None) is stray for stmt in body):
        what = "self.next(...) is called inside a block (if/for/while/with/try)"
    elif trailing is not None:
        what = "self.next(...) is called more than once"
    else:
        what = "self.next(...) is not the last statement"
    return stray.lineno, (
        f"{what}; a step must end with exactly one unconditional self.next(...) as its last "
        "statement (to choose a path at run time, set an artifact and act on it in the next "
        "step)."
    )


class _Call(NamedTuple):
    """What a ``self.next`` call says: its targets and, if any, foreach or switch details."""

    out: tuple[str, ...]
    foreach: str | None
    condition: str | None = None
    cases: tuple[tuple[str, str], ...] = ()


def _step_name(arg: ast.expr, self_name: str) -> str | None:
    if isinstance(arg, ast.Attribute) and isinstance(arg.value, ast.Name):
        return arg.attr if arg.value.id == self_name else None
    return None


def _read_call(call: ast.Call, self_name: str) -> _Call | str:
    """The targets and foreach artifact of a ``self.next`` call, or what is wrong with it."""
    if any(isinstance(arg, ast.Dict) for arg in call.args):
        return _read_switch(call, self_name)
    out: list[str] = []
    for arg in call.args:
        name = _step_name(arg, self_name)
        if name is None:
            return (
                "each target of self.next(...) must be written as self.<step>, not "
                f"`{ast.unparse(arg)}`; the graph is read from the source, so dynamic forms "
                "such as *args are not supported."
            )
        out.append(name)
    if not out:
        return (
            "self.next() names no step; pass the step(s) that run next, e.g. self.next(self.end)."
        )
    foreach: str | None = None
    for kw in call.keywords:
        value = kw.value
        if kw.arg == "condition":
            return _switch_form("condition= needs a dict of cases as the only target")
        if kw.arg != "foreach":
            shown = f"{kw.arg}=" if kw.arg else f"**{ast.unparse(value)}"
            return f'self.next(...) accepts only foreach="<artifact>"; remove `{shown}`.'
        if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
            found = ast.unparse(value)
            return f'foreach= must be a string literal such as foreach="items", not `{found}`.'
        foreach = value.value
    return _Call(tuple(out), foreach)


def _switch_form(what: str) -> str:
    return (
        f'{what}; write a switch as self.next({{"<value>": self.<step>, ...}}, '
        'condition="<artifact>"), with literal string values and steps written as self.<step>.'
    )


def _read_switch(call: ast.Call, self_name: str) -> _Call | str:
    """A switch: ``self.next({"a": self.x, ...}, condition="name")``, or what is wrong."""
    arg = call.args[0]
    if len(call.args) != 1 or not isinstance(arg, ast.Dict):
        return _switch_form("a switch takes its dict of cases as the only target")
    cases: list[tuple[str, str]] = []
    for key, value in zip(arg.keys, arg.values, strict=True):
        if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
            shown = "**" + ast.unparse(value) if key is None else ast.unparse(key)
            return _switch_form(f"the case `{shown}` is not a literal string")
        name = _step_name(value, self_name)
        if name is None:
            return _switch_form(f"the case {key.value!r} leads to `{ast.unparse(value)}`")
        if any(key.value == seen for seen, _ in cases):
            return _switch_form(f"the case {key.value!r} is written twice")
        cases.append((key.value, name))
    if not cases:
        return _switch_form("the dict of cases is empty")
    condition: str | None = None
    for kw in call.keywords:
        if kw.arg != "condition":
            shown = f"{kw.arg}=" if kw.arg else f"**{ast.unparse(kw.value)}"
            return _switch_form(f"a switch accepts only condition=, not `{shown}`")
        value = kw.value
        if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
            return _switch_form(f"condition= is `{ast.unparse(value)}`, not a literal string")
        condition = value.value
    if condition is None:
        return _switch_form("a dict of cases needs condition= naming the artifact that picks one")
    out = tuple(dict.fromkeys(target for _, target in cases))
    return _Call(out, None, condition, tuple(cases))


def _is_docstring(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


def _is_next_call(node: ast.AST, self_name: str) -> TypeGuard[ast.Call]:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "next"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == self_name
    )
