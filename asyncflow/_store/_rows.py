"""The records read plans return: one frozen dataclass per kind of row the client reads."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ArtifactRow", "AttemptInfo", "RunRow", "TaskRow"]


@dataclass(frozen=True, slots=True)
class RunRow:
    """One row of ``runs`` with its tags and its parameters' content addresses."""

    id: int
    flow: str
    status: str
    created_at: float
    finished_at: float | None
    origin_run_id: int | None
    graph: str
    error: str | None
    tags: tuple[str, ...]
    params: tuple[tuple[str, bytes], ...]
    # The run's lease (see ``_lease``): None for rows written before schema 2.
    owner_pid: int | None = None
    owner_host: str | None = None
    heartbeat_at: float | None = None
    # The blob of the flow's source code ({"path", "text"}); None before schema 3 or unread.
    source_sha: bytes | None = None
    # The run's identity across stores, and where an imported run came from (JSON).
    uid: str | None = None
    imported: str | None = None
    # Whether the run's pickled values may load (see ``_trust``): written here, or trusted.
    trusted: bool = False


@dataclass(frozen=True, slots=True)
class TaskRow:
    """One row of ``tasks``, without its captured output (see :func:`task_logs`)."""

    run_id: int
    id: int
    step: str
    path: str
    status: str
    started_at: float
    finished_at: float
    exception: str | None
    traceback: str | None
    attempt: int = 0
    origin_task_id: int | None = None


@dataclass(frozen=True, slots=True)
class AttemptInfo:
    """One attempt of a task, as the ``attempts`` table (earlier ones) or the task row
    (the final one) records it."""

    attempt: int
    status: str
    started_at: float
    finished_at: float
    stdout: str
    stderr: str
    exception: str | None
    traceback: str | None


@dataclass(frozen=True, slots=True)
class ArtifactRow:
    """One artifact of a task: its name and what its blob row says of the value."""

    name: str
    sha: bytes
    encoding: str
    size: int
