"""The flow graph: every step, how it leaves, and how splits pair with their joins.

:func:`build_graph` finds the ``@step`` methods of a class (base classes included), reads each
step's source once to find its trailing ``self.next(...)``, derives the split/join structure
and validates it (:mod:`._validate`). The result is an immutable :class:`FlowGraph`; callers
cache it per class. Rules about *how* ``self.next`` is written (last statement, literal
targets, literal ``foreach=``) are checked here, while the source is at hand; rules about the
*shape* of the graph live in :mod:`._validate`.
"""

from __future__ import annotations

import ast
import enum
import inspect
import json
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeGuard

from .._errors import FlowValidationError
from ._ends import DEFAULT_END, DEFAULT_START, terminal_steps
from ._names import RESERVED_NAMES
from ._placement import effective_resources
from ._step import StepInfo, step_info

__all__ = ["FlowGraph", "Node", "NodeKind", "build_graph", "parse_step"]


class NodeKind(enum.Enum):
    """How a step leaves: which form of ``self.next`` it ends with."""

    LINEAR = "linear"  # self.next(self.a)
    SPLIT = "split"  # self.next(self.a, self.b, ...)
    FOREACH = "foreach"  # self.next(self.a, foreach="items")
    END = "end"  # no self.next: the end step


@dataclass(frozen=True, slots=True)
class Node:
    """One step of a flow and its place in the graph.

    ``in_`` lists the parent steps: for the join of a static split, in the order of the
    split's ``next()`` targets (the branch each parent ends); otherwise in definition order.
    ``split_parents`` are the splits still open around the step, outermost first (a join is
    outside the split it closes); ``foreach_depth`` counts the foreach splits among them.
    """

    name: str
    kind: NodeKind
    out: tuple[str, ...]
    foreach_var: str | None
    is_join: bool
    in_: tuple[str, ...]
    join_kind: str | None  # "static" or "foreach", for joins
    closes: str | None  # the split a join closes
    matching_join: str | None  # the join that closes a split or foreach
    foreach_depth: int
    split_parents: tuple[str, ...]
    info: StepInfo
    doc: str | None
    next_line: int | None  # line of the self.next call, for messages

    @property
    def where(self) -> str:
        """``file:line`` of the step's ``self.next`` call, else of its ``def``."""
        line = self.next_line if self.next_line is not None else self.info.line
        return f"{self.info.file}:{line}"


@dataclass(frozen=True, slots=True)
class FlowGraph:
    """The immutable graph of a flow class.

    ``graph["train"]`` is a :class:`Node`; iterating a graph yields its nodes in definition
    order; ``"train" in graph`` tests a step name; ``len(graph)`` counts the steps.
    ``nodes`` is a read-only mapping from step name to node, in definition order.
    """

    name: str
    doc: str | None
    nodes: Mapping[str, Node]

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes.values())

    def __len__(self) -> int:
        return len(self.nodes)

    def __contains__(self, name: object) -> bool:
        return name in self.nodes

    @property
    def start_step(self) -> str:
        """The name of the first step (``start``, or the step marked ``@step(start=True)``)."""
        return terminal_steps(self.nodes)[0]

    @property
    def end_step(self) -> str:
        """The name of the last step (``end``, or the step marked ``@step(end=True)``)."""
        return terminal_steps(self.nodes)[1]

    def to_json(self) -> dict[str, Any]:
        """A JSON-able description of the graph, persisted with each run."""
        return {
            "name": self.name,
            "doc": self.doc,
            "start_step": self.start_step,
            "end_step": self.end_step,
            "steps": [
                {
                    "name": n.name,
                    "kind": n.kind.value,
                    "out": list(n.out),
                    "in": list(n.in_),
                    "foreach_var": n.foreach_var,
                    "is_join": n.is_join,
                    "join_kind": n.join_kind,
                    "closes": n.closes,
                    "matching_join": n.matching_join,
                    "foreach_depth": n.foreach_depth,
                    "split_parents": list(n.split_parents),
                    "is_async": n.info.is_async,
                    "file": n.info.file,
                    "line": n.info.line,
                    "doc": n.doc,
                    **_placement_json(n.info),
                }
                for n in self
            ],
        }

    def to_text(self) -> str:
        """The graph as readable text: the flow's docstring, then each step, its doc and arrow."""
        lines = [self.name]
        first, last = terminal_steps(self.nodes)
        if self.doc:
            lines += [textwrap.indent(self.doc, "    "), ""]
        for n in self:
            notes = ["async"] if n.info.is_async else []
            if n.name == first != DEFAULT_START:
                notes.append("the first step: start=True")
            if n.name == last != DEFAULT_END:
                notes.append("the last step: end=True")
            if n.is_join and n.closes is not None:
                what = "foreach" if n.join_kind == "foreach" else "split"
                notes.append(f"joins the {what} of {n.closes}")
            lines.append(f"step {n.name}" + (f"  ({'; '.join(notes)})" if notes else ""))
            if n.doc:
                lines.append(textwrap.indent(n.doc, "    "))
            lines += [f"    {_arrow(n)}", ""]
        return "\n".join(lines).rstrip() + "\n"

    def to_mermaid(self) -> str:
        """The graph as a Mermaid flowchart (``flowchart TD``)."""
        # Node ids get a prefix: "end" is a Mermaid keyword and would break the chart.
        lines = ["flowchart TD"]
        ends = terminal_steps(self.nodes)
        for n in self:
            label = json.dumps(n.name)
            if n.name in ends:
                shape = f"([{label}])"
            elif n.kind in (NodeKind.SPLIT, NodeKind.FOREACH):
                shape = f"{{{{{label}}}}}"
            else:
                shape = f"[{label}]"
            lines.append(f"    s_{n.name}{shape}")
        for n in self:
            for target in n.out:
                edge = f'-->|"foreach({n.foreach_var})"|' if n.foreach_var else "-->"
                lines.append(f"    s_{n.name} {edge} s_{target}")
        return "\n".join(lines) + "\n"


def _arrow(node: Node) -> str:
    if node.kind is NodeKind.END:
        return f"{node.name} (the flow ends here)"
    if node.kind is NodeKind.FOREACH:
        return f"{node.name} --foreach({node.foreach_var})--> {', '.join(node.out)}"
    if node.kind is NodeKind.SPLIT:
        return f"{node.name} --split--> {', '.join(node.out)}"
    return f"{node.name} --> {node.out[0]}"


def _placement_json(info: StepInfo) -> dict[str, Any]:
    # Where and how the step ran, stored with each run (read back by ``task.resources``).
    out: dict[str, Any] = {}
    resources = effective_resources(info)
    if resources is not None:
        out["resources"] = resources.to_json()
    if info.compute is not None:
        out["compute"] = info.compute.name
    if info.environment:
        out["environment"] = [name for name, _ in info.environment]  # names, never values
    return out


def build_graph(flow_cls: type) -> FlowGraph:
    """Build and validate the graph of a flow class.

    :param flow_cls: any class whose steps are methods decorated with ``@step``.
    :raises FlowValidationError: a step's source cannot be read, its ``self.next`` is not
        written in a supported form, or the graph breaks a rule (see :mod:`._validate`).
    """
    # _validate and _constants import this module; importing them here avoids a cycle.
    from ._constants import constant_writes
    from ._validate import place_nodes, raise_problems, validate

    problems: list[FlowValidationError] = []
    found = _collect_steps(flow_cls, problems)
    nodes: dict[str, Node] = {}
    for info in found:
        node = _read_node(info, problems)
        if node is not None:
            nodes[info.name] = node
    problems += constant_writes(flow_cls, (node.info for node in nodes.values()))
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


def parse_step(info: StepInfo) -> tuple[ast.FunctionDef | ast.AsyncFunctionDef, int] | None:
    """The step's ``def`` as an AST (line numbers relative to its first line) and that first
    line, or None when its source cannot be read or parsed."""
    try:
        lines, first = inspect.getsourcelines(info.func)
    except (OSError, TypeError):
        return None
    func = _parse_def(lines, first, info.name)
    return None if func is None else (func, first)


def _read_node(info: StepInfo, problems: list[FlowValidationError]) -> Node | None:
    """Parse the step's source and describe its trailing ``self.next``; None on a problem."""
    name = info.name
    try:
        lines, first = inspect.getsourcelines(info.func)
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
    func = _parse_def(lines, first, name)
    if func is None:
        problems.append(
            FlowValidationError(
                f"Cannot find the def of step '{name}' in its source at {info.where}; if the "
                "file was edited after the flow was imported, import it again.",
                name,
            )
        )
        return None
    params = func.args.posonlyargs + func.args.args
    self_name = params[0].arg if params else "self"
    found = _trailing_next(func, self_name)
    line: int | None = None
    read: tuple[tuple[str, ...], str | None] | str = ((), None)
    if isinstance(found, tuple):
        line, read = found[0] + first - 1, found[1]
    elif found is not None:
        line, read = found.lineno + first - 1, _read_call(found, self_name)
    if isinstance(read, str):
        problems.append(FlowValidationError(f"Step '{name}' at {info.file}:{line}: {read}", name))
        return None
    out, foreach = read
    if foreach is not None:
        kind = NodeKind.FOREACH
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


def _read_call(call: ast.Call, self_name: str) -> tuple[tuple[str, ...], str | None] | str:
    """The targets and foreach artifact of a ``self.next`` call, or what is wrong with it."""
    out: list[str] = []
    for arg in call.args:
        if not (
            isinstance(arg, ast.Attribute)
            and isinstance(arg.value, ast.Name)
            and arg.value.id == self_name
        ):
            return (
                "each target of self.next(...) must be written as self.<step>, not "
                f"`{ast.unparse(arg)}`; the graph is read from the source, so dynamic forms "
                "such as *args are not supported."
            )
        out.append(arg.attr)
    if not out:
        return (
            "self.next() names no step; pass the step(s) that run next, e.g. self.next(self.end)."
        )
    foreach: str | None = None
    for kw in call.keywords:
        value = kw.value
        if kw.arg != "foreach":
            shown = f"{kw.arg}=" if kw.arg else f"**{ast.unparse(value)}"
            return f'self.next(...) accepts only foreach="<artifact>"; remove `{shown}`.'
        if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
            found = ast.unparse(value)
            return f'foreach= must be a string literal such as foreach="items", not `{found}`.'
        foreach = value.value
    return tuple(out), foreach


def _parse_def(
    lines: list[str], first: int, name: str
) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The function's AST with line numbers relative to ``first``, or None."""
    source = textwrap.dedent("".join(lines))
    wrapped = source[:1].isspace()
    if wrapped:
        # A string line indented less than the def defeats dedent; a block keeps it valid.
        source = "if True:\n" + source
    try:
        module = ast.parse(source)
    except SyntaxError:
        return None
    if not module.body:
        return None
    func = module.body[0]
    if wrapped and isinstance(func, ast.If) and func.body:
        func = func.body[0]
        ast.increment_lineno(func, -1)
    if isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef) and func.name == name:
        return func
    return None


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
