"""What asyncflow writes into each column of its records, and the one check of a record's
values against it before they become Python values.

A store or archive may come from elsewhere, be damaged, or be edited by hand: a time stored
as text, a tag as a blob, a graph nested a hundred thousand deep. Each reader turns such a
value into a clear error at the boundary where records become Python values (the read plans
of ``_queries``, gc's and export's own reads), through :func:`row_problem` and
:func:`parse_json`; no raw ``TypeError``, ``OverflowError`` or ``RecursionError`` gets
further. An archive's records are all checked in SQL when it is opened
(``_archive_checks.record_problem``), against the same table of kinds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

__all__ = [
    "COLUMN_KINDS",
    "INT",
    "MAX_ID",
    "TEXT",
    "TIME",
    "TIME_RANGE",
    "is_time",
    "parse_json",
    "row_problem",
]

# Run ids are SQLite rowids: 1 to 2**63 - 1. A larger number names no run.
MAX_ID = 2**63 - 1

INT = ("integer",)
TEXT = ("text",)
BLOB = ("blob",)
TIME = ("time",)  # a number within the range of datetime (checked by value)
# Unix times datetime can show: 0001-01-01 to 9999-12-31.
TIME_RANGE = (-62135596800, 253402300799)

# The kinds of value asyncflow writes into each column (and whether NULL is one of them).
COLUMN_KINDS: dict[str, tuple[tuple[str, tuple[str, ...], bool], ...]] = {
    "runs": (
        ("id", INT, False), ("flow", TEXT, False), ("status", TEXT, False),
        ("created_at", TIME, False), ("finished_at", TIME, True),
        ("origin_run_id", INT, True), ("graph", TEXT, False), ("error", TEXT, True),
        ("owner_pid", INT, True), ("owner_host", TEXT, True), ("heartbeat_at", TIME, True),
        ("uid", TEXT, True), ("trusted", INT, False), ("source_sha", BLOB, True),
        ("imported", TEXT, True),
    ),
    "run_tags": (("run_id", INT, False), ("tag", TEXT, False)),
    "run_params": (("run_id", INT, False), ("name", TEXT, False), ("sha", BLOB, False)),
    "tasks": (
        ("run_id", INT, False), ("id", INT, False), ("step", TEXT, False),
        ("path", TEXT, False), ("status", TEXT, False), ("started_at", TIME, False),
        ("finished_at", TIME, False), ("stdout", TEXT, True), ("stderr", TEXT, True),
        ("exception", TEXT, True), ("traceback", TEXT, True), ("attempt", INT, False),
        ("origin_task_id", INT, True),
    ),
    "attempts": (
        ("run_id", INT, False), ("task_id", INT, False), ("attempt", INT, False),
        ("status", TEXT, False), ("started_at", TIME, False), ("finished_at", TIME, False),
        ("stdout", TEXT, True), ("stderr", TEXT, True), ("exception", TEXT, True),
        ("traceback", TEXT, True),
    ),
    "artifacts": (
        ("run_id", INT, False), ("task_id", INT, False), ("name", TEXT, False),
        ("sha", BLOB, False),
    ),
    "blobs": (
        ("sha", BLOB, False), ("encoding", TEXT, False), ("meta", BLOB, True),
        ("size", INT, False), ("data", BLOB, True), ("nchunks", INT, False),
        ("mac", BLOB, True),
    ),
    "blob_chunks": (("sha", BLOB, False), ("idx", INT, False), ("data", BLOB, False)),
    "events": (("run_id", INT, False), ("seq", INT, False), ("data", BLOB, False)),
    "cards": (
        ("run_id", INT, False), ("task_id", INT, False), ("idx", INT, False),
        ("card_id", TEXT, True), ("type", TEXT, False), ("sha", BLOB, False),
    ),
}  # fmt: skip

_KIND_OF = {
    table: {name: (kinds, null) for name, kinds, null in columns}
    for table, columns in COLUMN_KINDS.items()
}


def is_time(value: object) -> bool:
    """Whether ``value`` is a time asyncflow could have written: a finite int or float
    within :data:`TIME_RANGE` (what ``datetime`` can show)."""
    if type(value) not in (int, float) or not math.isfinite(value):  # type: ignore[arg-type]
        return False
    return TIME_RANGE[0] <= value <= TIME_RANGE[1]  # type: ignore[operator]


def _fits(value: object, kinds: tuple[str, ...]) -> bool:
    if kinds == TIME:
        return is_time(value)
    if kinds == INT:
        return type(value) is int
    if kinds == TEXT:
        return type(value) is str
    return type(value) is bytes


def row_problem(table: str, columns: Sequence[str], row: Sequence[Any]) -> str | None:
    """What is wrong with ``row`` (the values of ``columns`` of a record of ``table``), in
    words (the column and the kind of value found), or None if each value is of a kind
    asyncflow writes there."""
    kinds = _KIND_OF[table]
    for name, value in zip(columns, row, strict=True):
        allowed, null = kinds[name]
        if value is None and null:
            continue
        if not _fits(value, allowed):
            found = type(value).__name__
            if type(value) in (int, float):
                found += f" {value!r:.40}"
            return f"{table}.{name} holds {found}, where asyncflow writes {allowed[0]}"
    return None


def parse_json(text: object) -> Any:
    """``json.loads(text)``, refusing (with ValueError) what is not JSON text, and JSON
    nested too deep for Python to build (``[`` a hundred thousand times: RecursionError)."""
    if not isinstance(text, str | bytes):
        raise ValueError(f"{type(text).__name__} where JSON text belongs")
    try:
        return json.loads(text)
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc
