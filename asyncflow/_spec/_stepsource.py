"""Reading a step's ``def`` back from its source, for the checks that look at what a step does.

:func:`._graph.build_graph` reads each step's trailing ``self.next(...)`` and
:func:`._constants.constant_writes` the attributes a step sets; both parse the step's source
here, the same way.

A step's lines are found as ``inspect.getsourcelines`` finds them, except that the end of the
block comes from one parse of the whole file (the ``end_lineno`` of the ``def`` that starts
there) instead of tokenizing each step's block: for a 100-step flow, ~2 ms instead of ~20.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import threading
from collections.abc import Callable

from ._step import StepInfo

__all__ = ["ParsedDef", "parse_def", "parse_step", "source_lines"]

#: A step's ``def`` as an AST (line numbers relative to its first line) and that first line.
ParsedDef = tuple[ast.FunctionDef | ast.AsyncFunctionDef, int]

# The last file indexed: its lines (linecache's list, compared by identity: a reloaded file
# is a new list) and, by first line (a decorator's or the def's), the last line of each def.
_last_index: tuple[list[str], dict[int, int]] | None = None
_index_lock = threading.Lock()
# The fields that hold statements (or handlers and cases, which hold statements).
_BLOCKS = ("body", "orelse", "finalbody", "handlers", "cases")


def source_lines(func: Callable[..., object]) -> tuple[list[str], int]:
    """``inspect.getsourcelines(func)`` for a function: its lines and its first line number.

    :raises OSError: the source cannot be read.
    :raises TypeError: ``func`` is not something Python keeps source lines for.
    """
    func = inspect.unwrap(func)
    lines, start = inspect.findsource(func)
    if inspect.ismodule(func):
        return lines, 0
    end = _block_ends(lines).get(start + 1)
    if end is None:  # not a def the parse found (a lambda, a file that does not parse, ...)
        return inspect.getblock(lines[start:]), start + 1
    return lines[start:end], start + 1


def _block_ends(lines: list[str]) -> dict[int, int]:
    global _last_index
    with _index_lock:  # graphs may be built in several threads at once
        if _last_index is not None and _last_index[0] is lines:
            return _last_index[1]
        ends: dict[int, int] = {}
        try:
            tree = ast.parse("".join(lines))
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            tree = None  # every step then takes inspect's way
        # A def is a statement: walk the blocks of statements, not every expression.
        todo: list[ast.AST] = list(tree.body) if tree is not None else []
        while todo:
            node = todo.pop()
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno:
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                ends[first] = node.end_lineno
            for block in _BLOCKS:
                todo.extend(getattr(node, block, ()))
        _last_index = (lines, ends)
        return ends


def parse_step(info: StepInfo) -> ParsedDef | None:
    """The step's ``def`` as an AST (line numbers relative to its first line) and that first
    line, or None when its source cannot be read or parsed."""
    try:
        lines, first = source_lines(info.func)
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
