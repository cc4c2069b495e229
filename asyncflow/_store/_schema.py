"""The store's schema: DDL, its version and the ordered migrations.

The schema is documented for users in README.md ("The store file"); change both together.
Table, column, status and codec names are persisted forever: add, never rename.
"""

from __future__ import annotations

import sqlite3

__all__ = ["APPLICATION_ID", "MIGRATIONS", "SCHEMA_VERSION", "migrate"]

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
)

SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection, from_version: int) -> None:
    """Apply every migration after ``from_version``; the caller holds a write transaction."""
    for name, script in MIGRATIONS[from_version:]:
        del name  # kept in the tuple for readers and for error messages
        for statement in script.split(";"):
            if statement.strip():
                conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
