"""Write store files for client tests directly, the way the runtime's writer lays them out.

``write_run`` puts one run (its row, tags, parameters, tasks and each task's complete
artifact mapping) into a store in one transaction, and returns the run id. Like the
runtime's writer, it marks the run trusted and signs its pickled values with this user's key
(the test session's, see conftest); ``trusted=False`` writes a run as an archive or a
colleague's store would hold it: untrusted, its pickles unsigned.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from asyncflow._codecs import Encoded, encode
from asyncflow._store._blobs import insert_blob
from asyncflow._store._db import open_writer
from asyncflow._store._signing import sign_blobs
from asyncflow._store._trust import TrustKey

T0 = 1_700_000_000.0


@dataclass
class T:
    """One finished task to write: its step, foreach path, artifacts and outcome."""

    step: str
    path: str = ""
    artifacts: Mapping[str, Any] = field(default_factory=dict)
    status: str = "succeeded"
    stdout: str | None = None
    stderr: str | None = None
    exception: str | None = None
    traceback: str | None = None
    id: int | None = None


class Counted:
    """A custom-class artifact that counts how often it is unpickled."""

    loads = 0

    def __init__(self, value: int) -> None:
        self.value = value

    def __setstate__(self, state: dict[str, Any]) -> None:
        type(self).loads += 1
        self.__dict__.update(state)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Counted) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)


def linear_graph(flow: str, steps: Sequence[str]) -> dict[str, Any]:
    """A graph JSON like the runtime's, each step's parent being the one before it."""
    return {
        "name": flow,
        "doc": None,
        "steps": [
            {"name": s, "in": [steps[i - 1]] if i else [], "out": list(steps[i + 1 : i + 2])}
            for i, s in enumerate(steps)
        ],
    }


@contextmanager
def writer(path: str) -> Iterator[sqlite3.Connection]:
    """A write connection on ``path`` (the store is created if missing), closed on exit."""
    conn = open_writer(path)
    try:
        yield conn
    finally:
        conn.close()


def write_run(
    path: str,
    flow: str = "TrainFlow",
    tasks: Sequence[T] = (),
    *,
    status: str = "succeeded",
    tags: Sequence[str] = (),
    params: Mapping[str, Any] | None = None,
    graph: Mapping[str, Any] | None = None,
    created_at: float = T0,
    finished_at: float | None = T0 + 60,
    origin_run_id: int | None = None,
    error: str | None = None,
    conn: sqlite3.Connection | None = None,
    trusted: bool = True,
    key: TrustKey | None = None,
) -> int:
    """Write one run with its tasks and return its id (see the module docstring).

    :param conn: write with this connection, inside the caller's transaction (no commit).
    :param trusted: mark the run trusted and sign its pickled values (as a run of this
        user's); False leaves both undone.
    :param key: sign with this key instead of the session's (another user's, say).
    """
    if conn is None:
        with writer(path) as own:
            own.execute("BEGIN IMMEDIATE")
            new_id = write_run(
                path, flow, tasks, status=status, tags=tags, params=params, graph=graph,
                created_at=created_at, finished_at=finished_at, origin_run_id=origin_run_id,
                error=error, conn=own, trusted=trusted, key=key,
            )  # fmt: skip
            own.execute("COMMIT")
            return new_id
    if graph is None:
        graph = linear_graph(flow, list(dict.fromkeys(t.step for t in tasks)))
    cur = conn.execute(
        "INSERT INTO runs (flow, status, created_at, finished_at, origin_run_id, graph, error, "
        "trusted) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (flow, status, created_at, finished_at, origin_run_id, json.dumps(graph), error,
         int(trusted)),
    )  # fmt: skip
    run_id = cur.lastrowid
    assert run_id is not None
    conn.executemany(
        "INSERT INTO run_tags (run_id, tag) VALUES (?, ?)", [(run_id, t) for t in tags]
    )
    signer = (key or TrustKey()) if trusted else None
    for name, value in (params or {}).items():
        enc = encode(value)
        _store_blob(conn, enc, signer)
        conn.execute(
            "INSERT INTO run_params (run_id, name, sha) VALUES (?, ?, ?)", (run_id, name, enc.sha)
        )
    for number, task in enumerate(tasks, start=1):
        task_id = task.id if task.id is not None else number
        conn.execute(
            "INSERT INTO tasks (run_id, id, step, path, status, started_at, finished_at, "
            "stdout, stderr, exception, traceback) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id, task_id, task.step, task.path, task.status, created_at + number,
                created_at + number + 0.5, task.stdout, task.stderr, task.exception,
                task.traceback,
            ),
        )  # fmt: skip
        for name, value in task.artifacts.items():
            enc = encode(value)
            _store_blob(conn, enc, signer)
            conn.execute(
                "INSERT INTO artifacts (run_id, task_id, name, sha) VALUES (?, ?, ?, ?)",
                (run_id, task_id, name, enc.sha),
            )
    return run_id


def _store_blob(conn: sqlite3.Connection, enc: Encoded, signer: TrustKey | None) -> None:
    if signer is not None and enc.encoding == "pickle":
        sign_blobs(conn, [enc], signer)
    else:
        insert_blob(conn, enc)


def sha_of(value: Any) -> bytes:
    """The content address a value is stored under."""
    return encode(value).sha


def execute(path: str, sql: str, params: Sequence[Any] = ()) -> None:
    """Run one statement on the store and commit (to damage or update it in tests)."""
    with writer(path) as conn:
        conn.execute(sql, params)
