"""The store's schema: DDL, its version, the ordered migrations, and the check that a file
holds exactly the schema they make.

The schema is documented for users in README.md ("The store file"); change both together.
Table, column, status and codec names are persisted forever: add, never rename.

A store or archive may come from someone else, and SQL objects in a file run inside our own
statements: a trigger fires on our inserts, a view answers our reads. So a file is used only
if its ``sqlite_master`` holds exactly the objects :data:`MIGRATIONS` create for its version
(:func:`schema_problem`): same types, names, tables and SQL (whitespace aside). The only
extra objects allowed are the statistics tables SQLite's own ``ANALYZE`` makes, which hold
numbers for the query planner and run nothing.
"""

from __future__ import annotations

import functools
import re
import sqlite3

__all__ = [
    "APPLICATION_ID",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "add_empty_tables",
    "migrate",
    "missing_tables",
    "run_tables",
    "schema_problem",
    "table_is_ours",
    "tables_at",
]

# "AFlw": lets us tell our files from other programs' SQLite databases.
APPLICATION_ID = 0x41466C77

# Each entry upgrades the schema from version i to i + 1. Append only.
MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "initial schema",
        """
        CREATE TABLE store_info (
            key   TEXT PRIMARY KEY,
            value TEXT NOT NULL
        ) WITHOUT ROWID;

        CREATE TABLE runs (
            id            INTEGER PRIMARY KEY AUTOINCREMENT,
            flow          TEXT NOT NULL,
            status        TEXT NOT NULL,
            created_at    REAL NOT NULL,
            finished_at   REAL,
            origin_run_id INTEGER,
            graph         TEXT NOT NULL,
            error         TEXT
        );
        CREATE INDEX runs_by_flow ON runs (flow, id);

        CREATE TABLE run_tags (
            run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            tag    TEXT NOT NULL,
            PRIMARY KEY (run_id, tag)
        ) WITHOUT ROWID;
        CREATE INDEX run_tags_by_tag ON run_tags (tag);

        CREATE TABLE run_params (
            run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            name   TEXT NOT NULL,
            sha    BLOB NOT NULL,
            PRIMARY KEY (run_id, name)
        ) WITHOUT ROWID;

        CREATE TABLE tasks (
            run_id      INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            id          INTEGER NOT NULL,
            step        TEXT NOT NULL,
            path        TEXT NOT NULL,
            status      TEXT NOT NULL,
            started_at  REAL NOT NULL,
            finished_at REAL NOT NULL,
            stdout      TEXT,
            stderr      TEXT,
            exception   TEXT,
            traceback   TEXT,
            PRIMARY KEY (run_id, id)
        ) WITHOUT ROWID;
        CREATE INDEX tasks_by_step ON tasks (run_id, step, path);

        CREATE TABLE artifacts (
            run_id  INTEGER NOT NULL,
            task_id INTEGER NOT NULL,
            name    TEXT NOT NULL,
            sha     BLOB NOT NULL,
            PRIMARY KEY (run_id, task_id, name)
        ) WITHOUT ROWID;

        CREATE TABLE blobs (
            sha      BLOB NOT NULL UNIQUE,
            encoding TEXT NOT NULL,
            meta     BLOB,
            size     INTEGER NOT NULL,
            data     BLOB,
            nchunks  INTEGER NOT NULL DEFAULT 0
        );

        CREATE TABLE blob_chunks (
            sha  BLOB NOT NULL,
            idx  INTEGER NOT NULL,
            data BLOB NOT NULL,
            PRIMARY KEY (sha, idx)
        );
        """,
    ),
    (
        "attempts, run ownership, task clones",
        """
        ALTER TABLE tasks ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE tasks ADD COLUMN origin_task_id INTEGER;

        CREATE TABLE attempts (
            run_id      INTEGER NOT NULL,
            task_id     INTEGER NOT NULL,
            attempt     INTEGER NOT NULL,
            status      TEXT NOT NULL,
            started_at  REAL NOT NULL,
            finished_at REAL NOT NULL,
            stdout      TEXT,
            stderr      TEXT,
            exception   TEXT,
            traceback   TEXT,
            PRIMARY KEY (run_id, task_id, attempt)
        ) WITHOUT ROWID;

        ALTER TABLE runs ADD COLUMN owner_pid INTEGER;
        ALTER TABLE runs ADD COLUMN owner_host TEXT;
        ALTER TABLE runs ADD COLUMN heartbeat_at REAL;
        """,
    ),
    (
        "run identity, trust, flow source, provenance of imported runs",
        """
        ALTER TABLE runs ADD COLUMN uid TEXT;
        UPDATE runs SET uid = lower(hex(randomblob(16)));
        CREATE UNIQUE INDEX runs_by_uid ON runs (uid);
        ALTER TABLE runs ADD COLUMN trusted INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE runs ADD COLUMN source_sha BLOB;
        ALTER TABLE runs ADD COLUMN imported TEXT;
        ALTER TABLE blobs ADD COLUMN mac BLOB;
        """,
    ),
    (
        "the events of runs (see _events: one row per writer batch and run)",
        """
        CREATE TABLE events (
            run_id INTEGER NOT NULL,
            seq    INTEGER NOT NULL,
            data   BLOB NOT NULL,
            PRIMARY KEY (run_id, seq)
        ) WITHOUT ROWID;
        """,
    ),
    (
        "the cards of tasks (see _spec/_card_form: each card's components, one blob)",
        """
        CREATE TABLE cards (
            run_id  INTEGER NOT NULL,
            task_id INTEGER NOT NULL,
            idx     INTEGER NOT NULL,
            card_id TEXT,
            type    TEXT NOT NULL,
            sha     BLOB NOT NULL,
            PRIMARY KEY (run_id, task_id, idx)
        ) WITHOUT ROWID;
        """,
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection, from_version: int, until: int = SCHEMA_VERSION) -> None:
    """Apply the migrations after ``from_version`` up to ``until``; the caller holds a write
    transaction."""
    for name, script in MIGRATIONS[from_version:until]:
        del name  # kept in the tuple for readers and for error messages
        for statement in script.split(";"):
            if statement.strip():
                conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {until}")


# One row of sqlite_master: (type, name, tbl_name, sql with whitespace normalised).
_Object = tuple[object, object, object, object]
# SQLite's own whitespace only: Python's \s also matches characters such as U+00A0 that
# SQLite reads as part of a name ("INTEGER\xa0PRIMARY\xa0KEY" is a type name, not a key).
_SQL_SPACE = " \t\n\f\r"
_SPACE = re.compile(f"[{_SQL_SPACE}]+")
_PUNCT_SPACE = re.compile(r" ?([(),]) ?")
# What ANALYZE creates in a SQLite built with SQLITE_ENABLE_STAT4 (the Python one may not be).
_STAT4 = "CREATE TABLE sqlite_stat4(tbl,idx,neq,nlt,ndlt,sample)"


def _normal(sql: object) -> object:
    """``sql`` with runs of whitespace made one space, and none around ( ) and commas."""
    if not isinstance(sql, str):
        return sql
    return _PUNCT_SPACE.sub(r"\1", _SPACE.sub(" ", sql)).strip(_SQL_SPACE)


def _objects(conn: sqlite3.Connection, schema: str) -> list[_Object]:
    rows = conn.execute(f"SELECT type, name, tbl_name, sql FROM {schema}.sqlite_master").fetchall()
    return [(kind, name, table, _normal(sql)) for kind, name, table, sql in rows]


def _expected(version: int) -> tuple[frozenset[_Object], frozenset[_Object]]:
    """(the objects a store of schema ``version`` holds, the statistics tables allowed).
    Built once per version from :data:`MIGRATIONS` in an in-memory database."""
    ours, stats, _ = _built(version)
    return ours, stats


def run_tables() -> tuple[str, ...]:
    """The tables of the current schema whose rows belong to a run: every one with a
    ``run_id`` column (tags, parameters, tasks, attempts, artifacts, cards; a table added later is
    included by itself). ``runs`` itself is not among them."""
    return _built(SCHEMA_VERSION)[2]


@functools.cache
def _built(version: int) -> tuple[frozenset[_Object], frozenset[_Object], tuple[str, ...]]:
    # One in-memory database per version answers both questions above (a first run asks
    # both: building it is most of the cost).
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        migrate(conn, 0, until=version)
        ours = frozenset(_objects(conn, "main"))
        tables = [
            str(name)
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        with_run_id = tuple(
            t
            for t in tables
            if any(col[1] == "run_id" for col in conn.execute(f"PRAGMA table_info({t})"))
        )
        conn.execute("ANALYZE")
        stats = {o for o in _objects(conn, "main") if o not in ours}
        stats.add(("table", "sqlite_stat4", "sqlite_stat4", _STAT4))  # if SQLite built it
        return ours, frozenset(stats), with_run_id
    finally:
        conn.close()


def _named(obj: _Object) -> str:
    # Names come from the file itself: shown quoted, as data.
    return f"{obj[0]} {str(obj[1])!r}"


def table_is_ours(conn: sqlite3.Connection, table: str, version: int, schema: str = "main") -> bool:
    """Whether ``table`` of ``schema`` is a table exactly as asyncflow creates it for schema
    ``version`` (so reading it runs no SQL of the file's), even if other objects are not."""
    ours, _ = _expected(version)
    mine = {o for o in ours if o[2] == table}
    return bool(mine) and mine <= set(_objects(conn, schema))


def schema_problem(conn: sqlite3.Connection, version: int, schema: str = "main") -> str | None:
    """What differs between the objects of ``schema`` on ``conn`` and those asyncflow
    creates for schema ``version`` (version 0: none at all), in words; None if nothing.
    Reads ``sqlite_master`` only: no object of the file is used."""
    ours, stats = _expected(version)
    found = _objects(conn, schema)
    kinds = {(o[0], o[1]) for o in ours}
    extra = [o for o in found if o not in ours and o not in stats]
    missing = [o for o in ours if o not in found]
    changed = sorted(_named(o) for o in extra if (o[0], o[1]) in kinds)
    unknown = sorted(_named(o) for o in extra if (o[0], o[1]) not in kinds)
    gone = sorted(_named(o) for o in missing if _named(o) not in changed)
    parts = [
        f"{label} {', '.join(names[:5])}{' and more' if len(names) > 5 else ''}"
        for label, names in (("unknown", unknown), ("changed", changed), ("missing", gone))
        if names
    ]
    return "; ".join(parts) or None


# --- files of an older schema, read as they are ------------------------------------------------


@functools.cache
def tables_at(version: int) -> frozenset[str]:
    """The names of the tables a file of schema ``version`` holds."""
    ours, _ = _expected(version)
    return frozenset(str(o[1]) for o in ours if o[0] == "table")


@functools.cache
def _added_tables(version: int) -> tuple[str, ...] | None:
    """The ``CREATE TABLE`` statements of the tables the current schema adds to schema
    ``version``, when adding tables is all that changed since (so a file of ``version`` reads
    as the current schema with those tables empty); None when anything else did (a column
    added to a table, an index on one)."""
    old, _ = _expected(version)
    new, _ = _expected(SCHEMA_VERSION)
    kept = {o[2] for o in old}
    added = new - old
    if not old <= new or any(o[2] in kept for o in added):
        return None
    return tuple(sorted(str(o[3]) for o in added if o[0] == "table"))


def add_empty_tables(conn: sqlite3.Connection, version: int) -> bool:
    """Make a file of the older schema ``version``, which ``conn`` may not write (a run
    archive), read as the current one: each table added since is created empty in the
    connection's ``temp`` schema, which SQLite searches first for a table named without a
    schema (indexes are left out: the tables stay empty). The file is not touched.

    :returns: False (and nothing created) if more than tables were added since ``version``.
    """
    statements = _added_tables(version)
    if statements is None:
        return False
    for sql in statements:
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS " + sql.removeprefix("CREATE TABLE "))
    return True


def missing_tables(conn: sqlite3.Connection, schema: str) -> frozenset[str]:
    """The tables of the current schema that the file attached as ``schema`` lacks (one of
    an older schema, whose rows of those tables are none)."""
    found = {
        str(name)
        for (name,) in conn.execute(f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table'")
    }
    return tables_at(SCHEMA_VERSION) - found
