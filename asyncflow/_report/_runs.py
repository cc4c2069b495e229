"""The run list ``asyncflow serve`` shows at ``/``: every run of a store, newest first,
filtered by flow, status and tag. Plain blocking reads through the client, meant for a
worker thread; the result is JSON-able data (``/api/runs`` sends it as it is).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .._client import Flow, Run, list_flows
from .._errors import NotFoundError

__all__ = ["STATUSES", "RunFilter", "list_runs", "run_url"]

# Every status a run can have (Run.status), in the order the filter offers them.
STATUSES = ("running", "succeeded", "failed", "cancelled", "crashed")
# The list shows at most this many runs (the newest); the rest are counted.
DEFAULT_LIMIT = 500


@dataclass(frozen=True)
class RunFilter:
    """Which runs to list: each field None (or empty) means any."""

    flow: str | None = None
    status: str | None = None
    tag: str | None = None
    limit: int = DEFAULT_LIMIT

    @classmethod
    def from_query(cls, query: dict[str, str]) -> RunFilter:
        """The filter the query parameters ``flow``, ``status`` and ``tag`` ask for (empty
        values mean any)."""
        return cls(
            flow=query.get("flow") or None,
            status=query.get("status") or None,
            tag=query.get("tag") or None,
        )


def run_url(flow: str, run_id: str, *, api: bool = False) -> str:
    """The path of a run's page (or, with ``api``, of its model), the flow name quoted."""
    return f"{'/api' if api else ''}/runs/{quote(flow, safe='')}/{quote(run_id, safe='')}"


def _epoch(run: Run, finished: bool) -> float | None:
    when = run.finished_at if finished else run.created_at
    return None if when is None else when.timestamp()


def _row(run: Run) -> dict[str, Any]:
    return {
        "flow": run.flow_name,
        "id": run.id,
        "pathspec": run.pathspec,
        "status": run.status,
        "created_at": _epoch(run, False),
        "finished_at": _epoch(run, True),
        "tags": sorted(run.tags),
        "system_tags": sorted(run.system_tags),
        "url": run_url(run.flow_name, run.id),
    }


def list_runs(store: str, where: RunFilter) -> dict[str, Any]:
    """The runs of ``store`` that ``where`` keeps, newest first, as plain data::

        {"store": <file name>, "flows": [every flow of the store], "filter": {...},
         "runs": [{"flow", "id", "pathspec", "status", "created_at", "finished_at",
                   "tags", "system_tags", "url"}], "total": <runs kept>,
         "limit": <most runs listed>, "problem": <why nothing matches> | None}

    :raises StoreError: the store cannot be read.
    """
    flows = list_flows(store)
    problem: str | None = None
    names = flows
    if where.flow is not None:
        names = [where.flow] if where.flow in flows else []
        if not names:
            problem = f"the store has no flow named {where.flow!r}"
    if where.status is not None and where.status not in STATUSES:
        problem = f"{where.status!r} is not a run status; the statuses are {', '.join(STATUSES)}"
        names = []
    rows: list[dict[str, Any]] = []
    tags = (where.tag,) if where.tag else ()
    for name in names:
        try:
            with Flow(name, store) as flow:
                runs = flow.runs(*tags)
                rows += [_row(r) for r in runs if where.status in (None, r.status)]
        except NotFoundError:  # every run of the flow was deleted since list_flows
            continue
    rows.sort(key=lambda r: (r["created_at"], int(r["id"])), reverse=True)
    return {
        "store": os.path.basename(store),
        "flows": flows,
        "filter": {"flow": where.flow, "status": where.status, "tag": where.tag},
        "statuses": list(STATUSES),
        "runs": rows[: where.limit],
        "total": len(rows),
        "limit": where.limit,
        "problem": problem,
    }
