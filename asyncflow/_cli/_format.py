"""Plain-text rendering for the command line: tables, times, durations, short values."""

from __future__ import annotations

import contextlib
import functools
import re
import reprlib
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

__all__ = [
    "byte_size",
    "duration",
    "indent_lines",
    "one_line",
    "pretty",
    "printable",
    "short_repr",
    "table",
    "when",
]

# C0 controls but tab and newline, DEL, C1 controls, and lone surrogates (which no terminal
# encoding can print): the characters a store's text may hold that must not reach a terminal
# as they are, since escape sequences can recolour, retitle or rewrite what it shows.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
# Ints up to this many decimal digits print in decimal (Python refuses beyond 4300 by
# default; converting is quadratic, ~0.15 s at this size); longer ones print in hex.
_INT_DIGITS = 100_000
_INT_BITS = int(_INT_DIGITS * 3.3219280948873626)  # log2(10): bits of that many digits


def printable(text: str) -> str:
    """``text`` safe to print on a terminal: control characters other than newline and tab
    (ESC, BEL, CR, ...) and lone surrogates are shown as Python escapes such as ``\\x1b``.

    Everything the command line prints that comes from a store (names, tags, errors, logs,
    values) goes through this, as a store or archive may come from anyone.
    """
    return _UNPRINTABLE.sub(_escape, text)


def _escape(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


@contextlib.contextmanager
def _long_ints() -> Iterator[None]:
    # Python refuses to print ints of more than 4300 digits (a guard against slow
    # conversions of untrusted input); up to _INT_DIGITS is fast enough for the command line.
    before = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(max(before, _INT_DIGITS) if before else 0)
    try:
        yield
    finally:
        sys.set_int_max_str_digits(before)


@functools.cache
def _printer() -> Any:
    """The pretty-printer class, made at the first value shown: a run imports this module
    (for :func:`printable`) and never ``pprint``."""
    import pprint

    class _Printer(pprint.PrettyPrinter):
        def format(self, obj: object, context: dict[int, int], maxlevels: int, level: int) -> Any:
            if type(obj) is int and obj.bit_length() > _INT_BITS:
                return hex(obj), False, False
            return super().format(obj, context, maxlevels, level)

    return _Printer


def pretty(value: Any) -> str:
    """``value`` as ``pprint`` shows it, ints of any size included (the longest in hex); a
    value whose ``repr()`` raises (a user's ``__repr__``) as one line that says so."""
    with _long_ints():
        try:
            return str(_printer()().pformat(value))
        except Exception as exc:
            what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return f"<a {type(value).__qualname__} whose repr() raised {one_line(what, 200)}>"


DUMP_CHARS = 10_000
"""``dump`` prints a value cut to this many characters; ``-o FILE`` writes it whole."""


def dump_text(value: Any, pathspec: str, store_option: str, *, bare_str: bool = True) -> str:
    """``value`` as ``dump`` prints it (a str as it is unless not ``bare_str``, anything
    else as :func:`pretty`), cut to :data:`DUMP_CHARS` characters with a last line that
    says how long it is and the command that writes it whole (``store_option``: ``
    --store PATH`` or "")."""
    text: str
    if isinstance(value, str | bytes | bytearray) and len(value) > DUMP_CHARS:
        # cut before pretty-printing: a 20 MB value is never formatted whole
        size = f"{len(value):,} {'characters' if isinstance(value, str) else 'bytes'}"
        head = value[:DUMP_CHARS]
        text = head if isinstance(head, str) and bare_str else pretty(head)[:DUMP_CHARS]
    else:
        text = value if isinstance(value, str) and bare_str else pretty(value)
        if len(text) <= DUMP_CHARS:
            return text
        size = f"{len(text):,} characters as printed"
        text = text[:DUMP_CHARS]
    return (
        f"{text}\n... (cut to its first {DUMP_CHARS:,} characters of {size}; write the whole "
        f"value to a file with `asyncflow dump {pathspec} -o FILE{store_option}`)"
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns two spaces apart, a header line first; no trailing spaces."""
    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in (headers, *rows)
    ]


def when(moment: datetime | None) -> str:
    """A UTC datetime as ``2024-05-01 12:00:03``, or ``-``."""
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def duration(start: datetime, end: datetime | None) -> str:
    """The time from ``start`` to ``end`` as ``4.2s``, ``3m 05s`` or ``2h 07m``; ``-`` if open."""
    if end is None:
        return "-"
    seconds = max(0.0, (end - start).total_seconds())
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def byte_size(size: int) -> str:
    """``812 B``, ``1.5 KiB``, ``3.0 MiB``, ``1.2 GiB``."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"


def short_repr(value: Any, width: int = 60) -> str:
    """``repr(value)`` cut to one line of at most ``width`` characters."""
    shortener = reprlib.Repr()
    shortener.maxstring = shortener.maxother = width
    shortener.maxlist = shortener.maxtuple = shortener.maxdict = shortener.maxset = 8
    try:
        if type(value) is int and value.bit_length() > _INT_BITS:
            text = hex(value)
        else:
            with _long_ints():
                text = shortener.repr(value)
    except Exception as exc:  # a user's __repr__ may fail; the listing goes on
        text = f"<repr failed: {type(exc).__name__}>"
    return one_line(text, width)


def one_line(text: str, width: int = 60) -> str:
    """``text`` with its whitespace runs made single spaces, cut to ``width`` characters."""
    text = " ".join(printable(text).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def indent_lines(text: str, prefix: str) -> str:
    """``text`` with ``prefix`` before each of its lines (a final newline is kept or added)."""
    if not text:
        return ""
    return "".join(prefix + line for line in text.splitlines(keepends=True)).rstrip("\n") + "\n"
