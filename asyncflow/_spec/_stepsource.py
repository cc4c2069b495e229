"""Reading a step's ``def`` back from its source, for the checks that look at what a step does.

:func:`._graph.build_graph` reads each step's trailing ``self.next(...)`` and
:func:`._constants.constant_writes` the attributes a step sets; both parse the step's source
here, the same way.

A step's lines are found as ``inspect.getsourcelines`` finds them, except that the end of the
block is first guessed from indentation alone (the first code line at the ``def``'s depth or
less) and taken when the lines so cut parse as that one ``def`` ending on its last code line;
inspect's tokenizer is used only when they do not (a string or a bracket that goes back to a
shallower column). For a 100-step flow ~1 ms instead of ~20, and the cost is the step's own
length: a step at the end of a long file does not pay for the file.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable

from ._step import StepInfo

__all__ = ["ParsedDef", "block_end", "parse_def", "parse_step", "read_def", "source_lines"]

#: A step's ``def`` as an AST (line numbers relative to its first line) and that first line.
ParsedDef = tuple[ast.FunctionDef | ast.AsyncFunctionDef, int]


_Def = ast.FunctionDef | ast.AsyncFunctionDef


def source_lines(func: Callable[..., object]) -> tuple[list[str], int]:
    """``inspect.getsourcelines(func)`` for a function: its lines and its first line number.

    :raises OSError: the source cannot be read.
    :raises TypeError: ``func`` is not something Python keeps source lines for.
    """
    lines, first, _ = _read(func)
    return lines, first


def read_def(func: Callable[..., object], name: str) -> tuple[int, _Def | None]:
    """The first line of ``func``'s source and its ``def`` named ``name`` as an AST (line
    numbers relative to that line), or None when the lines do not parse as that def. The
    block cut by indentation is parsed once, its parse serving as the def.

    :raises OSError: the source cannot be read.
    :raises TypeError: ``func`` is not something Python keeps source lines for.
    """
    lines, first, tree = _read(func)
    if tree is None:
        return first, parse_def(lines, first, name)
    return first, tree if tree.name == name else None


def _read(func: Callable[..., object]) -> tuple[list[str], int, _Def | None]:
    # The lines and first line as inspect.getsourcelines gives them, and the def parsed
    # when the block was cut by indentation (None when inspect's tokenizer cut it).
    func = inspect.unwrap(func)
    lines, start = inspect.findsource(func)
    if inspect.ismodule(func):
        return lines, 0, None
    cut = _cut(lines, start)
    if cut is None:  # not a def the scan can cut (a lambda, a string back at column 0, ...)
        return inspect.getblock(lines[start:]), start + 1, None
    end, tree = cut
    return lines[start:end], start + 1, tree


def block_end(lines: list[str], start: int) -> int | None:
    """The end (exclusive) of the ``def`` whose first line (a decorator's or its own) is
    ``lines[start]``, found from indentation and checked by parsing; None when unsure."""
    cut = _cut(lines, start)
    return None if cut is None else cut[0]


def _cut(lines: list[str], start: int) -> tuple[int, _Def] | None:
    first = lines[start]
    depth = len(first) - len(first.lstrip())
    end = len(lines)
    # Before the body: more decorators, then the def line itself, at the def's depth.
    seen_def = first.lstrip().startswith(("def ", "async "))
    in_header = True
    for i in range(start + 1, len(lines)):
        line = lines[i]
        code = line.strip()
        if not code or code.startswith("#"):
            continue
        if len(line) - len(line.lstrip()) > depth:
            in_header = not seen_def  # a decorator's arguments, or the body
            continue
        if in_header and not seen_def:
            if code.startswith(("def ", "async ")):
                seen_def = True
                continue
            if code.startswith("@"):
                continue
        end = i
        break
    while end > start + 1 and (
        not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")
    ):
        end -= 1
    source = textwrap.dedent("".join(lines[start:end]))
    try:
        module = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if len(module.body) != 1 or not isinstance(module.body[0], _Def):
        return None
    tree = module.body[0]
    return (end, tree) if tree.end_lineno == end - start else None


def parse_step(info: StepInfo) -> ParsedDef | None:
    """The step's ``def`` as an AST (line numbers relative to its first line) and that first
    line, or None when its source cannot be read or parsed."""
    try:
        first, func = read_def(info.func, info.name)
    except (OSError, TypeError):
        return None
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
