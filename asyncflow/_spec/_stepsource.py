"""Reading a step's ``def`` back from its source, for the checks that look at what a step does.

:func:`._graph.build_graph` reads each step's trailing ``self.next(...)`` and
:func:`._constants.constant_writes` the attributes a step sets; both parse the step's source
here, the same way.
"""

from __future__ import annotations

import ast
import inspect
import textwrap

from ._step import StepInfo

__all__ = ["parse_def", "parse_step"]


def parse_step(info: StepInfo) -> tuple[ast.FunctionDef | ast.AsyncFunctionDef, int] | None:
    """The step's ``def`` as an AST (line numbers relative to its first line) and that first
    line, or None when its source cannot be read or parsed."""
    try:
        lines, first = inspect.getsourcelines(info.func)
    except (OSError, TypeError):
        return None
    func = parse_def(lines, first, info.name)
    return None if func is None else (func, first)


def parse_def(
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


def attribute_loads(tree: ast.AST) -> frozenset[str]:
    """Every ``<expr>.<name>`` that ``tree`` reads (not the ones it assigns or deletes)."""
    return frozenset(
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load)
    )
