"""The client's read plans (see ``_plans``): flows, runs, steps and tasks, and blobs, with
the SQL text each runs and the mapping of its rows to records (``_rows``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._codecs import payload_buffer
from .._errors import StoreError
from ._blobs import RawBlob
from ._plans import BATCH, Plan, Query, Rows, checked, marks, names, record_error
from ._records import MAX_ID
from ._rows import ArtifactRow, AttemptInfo, RunRow, TaskRow

if TYPE_CHECKING:
    from .._codecs import OwnedBuffer

__all__ = [
    "artifacts",
    "attempts",
    "blob",
    "blobs",
    "cards",
    "flow_exists",
    "flow_names",
    "has_step",
    "path_key",
    "run",
    "run_ids",
    "runs",
    "step_names",
    "task_logs",
    "tasks",
]

# Chunk rows fetched by one query while assembling a large blob (2 MiB at 1 MiB a chunk):
# the rows' memory is then reused from window to window, where larger windows get fresh
# memory from the allocator each time and pay its page faults (loading 100 MB took ~50 ms
# with 1 or 2, ~130 ms with 8, ~300 ms with 64: benchmarks/RESULTS.md).
CHUNK_WINDOW = 2
# A large blob is read with the connection's memory map of the file turned off, and the map
# then restored: read through the map, each page of the file read stays in the process's
# RSS as long as the connection lives (a 1 GiB load peaked at 2x the array, the buffer and
# the mapped file), where SQLite's reads of overflow pages without it go straight from the
# file into each row's bytes (no faster or slower here: benchmarks/RESULTS.md, issue 15).
MMAP_GET = "PRAGMA mmap_size"
MMAP_SET = "PRAGMA mmap_size = {size:d}"

FLOW_NAMES = "SELECT DISTINCT flow FROM runs ORDER BY flow"
FLOW_EXISTS = "SELECT EXISTS (SELECT 1 FROM runs WHERE flow = ?)"
_TAGGED = "EXISTS (SELECT 1 FROM run_tags WHERE run_id = runs.id AND tag = ?)"
FLOW_NAMES_TAGGED = f"SELECT DISTINCT flow FROM runs WHERE {_TAGGED} ORDER BY flow"
FLOW_EXISTS_TAGGED = f"SELECT EXISTS (SELECT 1 FROM runs WHERE flow = ? AND {_TAGGED})"
_RUN_COLUMNS = (
    "id, flow, status, created_at, finished_at, origin_run_id, graph, error, "
    "owner_pid, owner_host, heartbeat_at, source_sha, uid, imported, trusted"
)
RUN_BY_ID = f"SELECT {_RUN_COLUMNS} FROM runs WHERE flow = ? AND id = ?"
RUN_IDS = "SELECT id FROM runs WHERE flow = ? ORDER BY id DESC LIMIT ?"
RUN_COUNT = "SELECT count(*) FROM runs WHERE flow = ?"
TAGS_OF = "SELECT run_id, tag FROM run_tags WHERE run_id IN ({marks}) ORDER BY run_id, tag"
PARAMS_OF = (
    "SELECT run_id, name, sha FROM run_params WHERE run_id IN ({marks}) ORDER BY run_id, name"
)
_TASK_COLUMNS = (
    "run_id, id, step, path, status, started_at, finished_at, exception, traceback, "
    "attempt, origin_task_id"
)
TASKS_OF_RUN = f"SELECT {_TASK_COLUMNS} FROM tasks WHERE run_id = ?"
TASKS_OF_STEP = f"SELECT {_TASK_COLUMNS} FROM tasks WHERE run_id = ? AND step = ?"
STEP_EXISTS = "SELECT EXISTS (SELECT 1 FROM tasks WHERE run_id = ? AND step = ?)"
STEP_NAMES = "SELECT step, min(id) FROM tasks WHERE run_id = ? GROUP BY step ORDER BY 2"
TASK_LOGS = "SELECT stdout, stderr FROM tasks WHERE run_id = ? AND id = ?"
# LEFT JOIN: a task lists its artifacts even if a blob row is missing (reading it then fails).
ARTIFACTS_OF = (
    "SELECT a.name, a.sha, coalesce(b.encoding, ''), coalesce(b.size, 0) "
    "FROM artifacts AS a LEFT JOIN blobs AS b ON b.sha = a.sha "
    "WHERE a.run_id = ? AND a.task_id = ? ORDER BY a.name"
)
CARDS_OF = "SELECT idx, card_id, type, sha FROM cards WHERE run_id = ? AND task_id = ? ORDER BY idx"
BLOBS_BY_SHA = (
    "SELECT sha, encoding, meta, size, data, nchunks, mac FROM blobs WHERE sha IN ({marks})"
)
CHUNKS = "SELECT idx, data FROM blob_chunks WHERE sha = ? AND idx >= ? AND idx < ? ORDER BY idx"
# What the chunk rows of a blob hold, without reading them (length() reads no content).
# And the bytes the whole file holds: rows that declare more share their pages (a damaged or
# forged b-tree), and would make a reader allocate what the file does not hold.
CHUNK_TOTAL = (
    "SELECT count(*), coalesce(sum(length(data)), 0), "
    "(SELECT page_count FROM pragma_page_count()) * (SELECT page_size FROM pragma_page_size()) "
    "FROM blob_chunks WHERE sha = ? AND idx >= 0 AND idx < ?"
)


def path_key(path: str) -> tuple[int, ...]:
    """Sort key of a foreach index path: numeric per level, so ``"2" < "10"``, ``"" < "0"``."""
    return tuple(int(part) if part.isdigit() else -1 for part in path.split(".")) if path else ()


# --- flows and runs ------------------------------------------------------------------------


def flow_names(tag: str | None = None) -> Plan[list[str]]:
    """The names of every flow with at least one run (carrying ``tag``, if given), sorted."""
    rows = yield (Query(FLOW_NAMES) if tag is None else Query(FLOW_NAMES_TAGGED, (tag,)))
    return [str(row[0]) for row in checked("runs", ("flow",), rows)]


def flow_exists(flow: str, tag: str | None = None) -> Plan[bool]:
    """Whether ``flow`` has at least one run (carrying ``tag``, if given)."""
    query = Query(FLOW_EXISTS, (flow,)) if tag is None else Query(FLOW_EXISTS_TAGGED, (flow, tag))
    rows = yield query
    return bool(rows[0][0])


def _runs_query(flow: str, tags: Sequence[str], status: str | None, limit: int | None) -> Query:
    sql = [f"SELECT {_RUN_COLUMNS} FROM runs WHERE flow = ?"]
    params: list[Any] = [flow]
    if status is not None:
        sql.append("AND status = ?")
        params.append(status)
    for tag in dict.fromkeys(tags):
        sql.append(f"AND {_TAGGED}")
        params.append(tag)
    sql.append("ORDER BY id DESC LIMIT ?")
    params.append(-1 if limit is None else limit)  # SQLite: a negative LIMIT means none
    return Query(" ".join(sql), tuple(params))


def runs(
    flow: str,
    *,
    tags: Sequence[str] = (),
    status: str | None = None,
    limit: int | None = None,
) -> Plan[list[RunRow]]:
    """The runs of ``flow``, newest first, that carry every tag in ``tags``.

    :param status: keep only runs with this status.
    :param limit: return at most this many runs.
    """
    rows = yield _runs_query(flow, tags, status, limit)
    return (yield from _complete_runs(rows))


def run(flow: str, run_id: int) -> Plan[RunRow | None]:
    """The run ``run_id`` of ``flow``, or None (also for a number no run id can be)."""
    if not 1 <= run_id <= MAX_ID:
        return None
    rows = yield Query(RUN_BY_ID, (flow, run_id))
    found = yield from _complete_runs(rows)
    return found[0] if found else None


def run_ids(flow: str, limit: int) -> Plan[tuple[list[int], int]]:
    """The ``limit`` newest run ids of ``flow`` and its total number of runs."""
    rows = yield Query(RUN_IDS, (flow, limit))
    count = yield Query(RUN_COUNT, (flow,))
    return [int(row[0]) for row in rows], int(count[0][0])


_RUN_NAMES = names(_RUN_COLUMNS)
_TAG_NAMES = ("run_id", "tag")
_PARAM_NAMES = ("run_id", "name", "sha")


def _complete_runs(rows: Rows) -> Plan[list[RunRow]]:
    rows = checked("runs", _RUN_NAMES, rows)
    ids = [int(row[0]) for row in rows]
    tags: dict[int, list[str]] = {i: [] for i in ids}
    params: dict[int, list[tuple[str, bytes]]] = {i: [] for i in ids}
    for start in range(0, len(ids), BATCH):
        batch = tuple(ids[start : start + BATCH])
        found = yield Query(TAGS_OF.format(marks=marks(len(batch))), batch)
        for run_id, tag in checked("run_tags", _TAG_NAMES, found):
            tags[run_id].append(tag)
        found = yield Query(PARAMS_OF.format(marks=marks(len(batch))), batch)
        for run_id, name, sha in checked("run_params", _PARAM_NAMES, found):
            params[run_id].append((name, bytes(sha)))
    return [
        RunRow(
            id=int(row[0]),
            flow=row[1],
            status=row[2],
            created_at=row[3],
            finished_at=row[4],
            origin_run_id=row[5],
            graph=row[6],
            error=row[7],
            tags=tuple(tags[int(row[0])]),
            params=tuple(params[int(row[0])]),
            owner_pid=row[8],
            owner_host=row[9],
            heartbeat_at=row[10],
            source_sha=None if row[11] is None else bytes(row[11]),
            uid=row[12],
            imported=row[13],
            trusted=bool(row[14]),
        )
        for row in rows
    ]


# --- steps and tasks -----------------------------------------------------------------------


_TASK_NAMES = names(_TASK_COLUMNS)


def _task_row(row: Sequence[Any]) -> TaskRow:
    checked("tasks", _TASK_NAMES, (row,))
    return TaskRow(*row)


def tasks(run_id: int, step: str | None = None) -> Plan[list[TaskRow]]:
    """The tasks of a run (or of one of its steps), by foreach path then id."""
    if step is None:
        rows = yield Query(TASKS_OF_RUN, (run_id,))
    else:
        rows = yield Query(TASKS_OF_STEP, (run_id, step))
    found = [_task_row(row) for row in rows]
    found.sort(key=lambda t: (path_key(t.path), t.id))
    return found


def step_names(run_id: int) -> Plan[list[str]]:
    """The steps of a run that have at least one task, by their first task id."""
    rows = yield Query(STEP_NAMES, (run_id,))
    return [str(row[0]) for row in rows]


def has_step(run_id: int, step: str) -> Plan[bool]:
    """Whether ``step`` has at least one task in the run."""
    rows = yield Query(STEP_EXISTS, (run_id, step))
    return bool(rows[0][0])


def task_logs(run_id: int, task_id: int) -> Plan[tuple[str, str]]:
    """What a task wrote to stdout and to stderr (``""`` when nothing)."""
    rows = yield Query(TASK_LOGS, (run_id, task_id))
    if not rows:
        return "", ""
    stdout, stderr = rows[0]
    return stdout or "", stderr or ""


TASK_ATTEMPTS = (
    "SELECT attempt, status, started_at, finished_at, stdout, stderr, exception, traceback "
    "FROM attempts WHERE run_id = ? AND task_id = ? ORDER BY attempt"
)


_ATTEMPT_NAMES = names(TASK_ATTEMPTS.split("FROM")[0].removeprefix("SELECT"))


def attempts(task: TaskRow) -> Plan[list[AttemptInfo]]:
    """Every attempt of a task, first to last (the last is the task row itself)."""
    rows = checked("attempts", _ATTEMPT_NAMES, (yield Query(TASK_ATTEMPTS, (task.run_id, task.id))))
    stdout, stderr = yield from task_logs(task.run_id, task.id)
    found = [
        AttemptInfo(int(r[0]), r[1], r[2], r[3], r[4] or "", r[5] or "", r[6], r[7]) for r in rows
    ]
    final = AttemptInfo(
        task.attempt,
        task.status,
        task.started_at,
        task.finished_at,
        stdout,
        stderr,
        task.exception,
        task.traceback,
    )
    return [*found, final]


def artifacts(run_id: int, task_id: int) -> Plan[list[ArtifactRow]]:
    """Every artifact of a task, by name, without reading any value."""
    rows = yield Query(ARTIFACTS_OF, (run_id, task_id))
    checked("artifacts", ("name", "sha"), [row[:2] for row in rows])
    return [ArtifactRow(row[0], bytes(row[1]), row[2], int(row[3])) for row in rows]


def cards(run_id: int, task_id: int) -> Plan[list[tuple[int, str | None, str, bytes]]]:
    """Every card of a task, by index: (index, id, type, sha of its components' blob)."""
    rows = yield Query(CARDS_OF, (run_id, task_id))
    checked("cards", ("idx", "card_id", "type", "sha"), rows)
    return [(int(r[0]), r[1], r[2], bytes(r[3])) for r in rows]


# --- blobs ---------------------------------------------------------------------------------


def _damaged(what: str, path: str) -> StoreError:
    return StoreError(
        f"{what} in the store file {path!r}; the store is damaged: restore it from a copy "
        "or re-run the flow.",
        path,
    )


def _assemble(sha: bytes, size: int, nchunks: int, path: str) -> Plan[OwnedBuffer]:
    # Windows of chunk rows into one preallocated buffer: memory stays near the blob's size.
    # The buffer is sized only once the rows are known to hold ``size`` bytes: a damaged or
    # edited row must not make us allocate what is not there.
    ((count, total, room),) = yield Query(CHUNK_TOTAL, (sha, nchunks))
    if count != nchunks or total != size:
        raise _damaged(f"blob {sha.hex()} is incomplete ({total} of {size} bytes)", path)
    if size > room:
        raise _damaged(
            f"blob {sha.hex()} declares {size} bytes, more than the whole file holds ({room})",
            path,
        )
    buf = payload_buffer(size)
    pos = idx = 0
    ((mapped,),) = yield Query(MMAP_GET)
    if mapped:
        yield Query(MMAP_SET.format(size=0))
    with memoryview(buf) as view:
        while idx < nchunks:
            stop = min(idx + CHUNK_WINDOW, nchunks)
            rows = yield Query(CHUNKS, (sha, idx, stop))
            for chunk_idx, data in rows:
                end = pos + len(data)
                if chunk_idx != idx or end > size:
                    break
                view[pos:end] = data
                pos, idx = end, idx + 1
            if idx != stop:  # a chunk is missing, out of order or too long
                break
    if mapped:  # not restored if SQLite failed: the connection then only reads slower
        yield Query(MMAP_SET.format(size=int(mapped)))
    if pos != size or idx != nchunks:
        raise _damaged(f"blob {sha.hex()} is incomplete ({pos} of {size} bytes)", path)
    return buf


def blobs(shas: Sequence[bytes], path: str = "") -> Plan[dict[bytes, RawBlob]]:
    """The stored form of many blobs, in batched queries.

    :param path: the store file, for error messages.
    :raises StoreError: a blob is missing or incomplete.
    """
    unique = list(dict.fromkeys(shas))
    out: dict[bytes, RawBlob] = {}
    for start in range(0, len(unique), BATCH):
        batch = tuple(unique[start : start + BATCH])
        rows = yield Query(BLOBS_BY_SHA.format(marks=marks(len(batch))), batch)
        for sha, encoding, meta, size, data, nchunks, mac in rows:
            key = bytes(sha)
            kinds = (type(encoding), type(size), type(nchunks), type(meta), type(data))
            if kinds[:3] != (str, int, int) or not {*kinds[3:]} <= {bytes, type(None)}:
                kind = ", ".join(k.__name__ for k in kinds)
                raise record_error(
                    TypeError(f"blob {key.hex()} has (encoding, size, nchunks, meta, data) "
                              f"of kinds ({kind})"),
                    path,
                )  # fmt: skip
            payload: bytes | OwnedBuffer
            if nchunks:
                payload = yield from _assemble(key, int(size), int(nchunks), path)
            else:
                payload = bytes(data) if data is not None else b""
            out[key] = RawBlob(
                key,
                encoding,
                None if meta is None else bytes(meta),
                payload,
                None if mac is None else bytes(mac),
            )
    missing = [sha for sha in unique if sha not in out]
    if missing:
        raise _damaged(f"{len(missing)} blob(s) (first {missing[0].hex()}) are missing", path)
    return out


def blob(sha: bytes, path: str = "") -> Plan[RawBlob]:
    """The stored form of one blob.

    :param path: the store file, for error messages.
    :raises StoreError: the blob is missing or incomplete.
    """
    found = yield from blobs([sha], path)
    return found[sha]
