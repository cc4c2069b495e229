"""Read plans, sans I/O: a plan yields the SQL text and maps the rows sent back to records.

A *plan* is a generator that yields a :class:`Query`, is sent back that query's rows (a list
of tuples) and finally returns its result. A plan does no I/O, so one plan serves both of the
client's drivers: the sync one (``sqlite3``) and the async one (``aiosqlite``). Plans compose
with ``yield from``; a driver runs a whole plan inside one read transaction, so everything it
reads comes from one consistent snapshot of the file, even while a writer commits.

Every value is bound as a parameter; the only text ever put into SQL is a run of ``?`` marks.
The client's plans are in ``_queries``, a resume's in ``_resume_reads``; gc and signing
have their own.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from .._errors import StoreError
from ._records import row_problem

__all__ = [
    "BATCH",
    "BEGIN_READ",
    "END_READ",
    "Plan",
    "Query",
    "Rows",
    "checked",
    "marks",
    "names",
    "record_error",
]

T = TypeVar("T")

Rows = Sequence[Sequence[Any]]


@dataclass(frozen=True, slots=True)
class Query:
    """One SQL statement and the values bound to its ``?`` marks."""

    sql: str
    params: tuple[Any, ...] = ()


Plan = Generator[Query, Rows, T]

# A read transaction: both statements only delimit the snapshot; nothing is ever written.
BEGIN_READ = "BEGIN"
END_READ = "ROLLBACK"

# Keys bound in one ``IN (...)`` list, far below SQLite's limit on bound variables.
BATCH = 500


def marks(count: int) -> str:
    return ",".join("?" * count)


def names(columns: str) -> tuple[str, ...]:
    return tuple(name.strip().split(".")[-1] for name in columns.split(","))


def checked(table: str, columns: tuple[str, ...], rows: Rows) -> Rows:
    """``rows`` once each value is of a kind asyncflow writes in its column (see
    ``_records``); else the TypeError the drivers turn into :func:`record_error`."""
    for row in rows:
        problem = row_problem(table, columns, row)
        if problem is not None:
            raise TypeError(problem)
    return rows


def record_error(exc: TypeError | ValueError, path: str) -> StoreError:
    """What a plan that failed on its rows means: a record holds a kind of value asyncflow
    never writes there (text where a sha is, say). Only a damaged store has one (an archive's
    records are checked when it is opened); the drivers raise this instead of ``exc``."""
    return StoreError(
        f"cannot read the store file {path!r}: a record holds a value asyncflow never writes "
        f"({type(exc).__name__}: {exc}); the store is damaged: restore it from a copy or "
        "re-run the flow.",
        path,
    )
