"""The run report's model: :func:`build_model` reads a run and returns plain JSON-able data.

The model is the contract between the report's parts: the page (``_page``) draws it, the
server (``_serve``) sends it. Its schema (``"format": "asyncflow-report"``, ``"version": 1``)::

    {"format", "version", "generated_at", "asyncflow_version", "source": {"kind", "name"},
     "run": {"flow", "id", "pathspec", "status", "created_at", "finished_at", "tags",
             "system_tags", "error", "origin_run_id", "parameters": [{"name", "preview"}],
             "doc"},
     "graph": {"start", "end", "steps": [{"name", "kind", "out", "in", "foreach_var",
                                          "condition", "cases", "doc"}]},
     "steps": [{"name", "n_tasks", "n_failed", "n_running", "started_at", "finished_at",
                "tasks": [TASK], "omitted"}],
     "timeline": [[step_index, task_id, start, end, status, retries], ...],
     "limits": {...}}

A TASK is ``{"id", "pathspec", "status", "started_at", "finished_at", "index", "pass",
"attempts": [{"n", "started_at", "finished_at", "ok"}], "artifacts": [{"name", "type",
"encoding", "size", "preview"}], "artifacts_omitted", "stdout", "stderr", "exception",
"traceback", "cards": [{"id", "type", "components"}]}``; a preview is one of
``_previews``'; card components are their stored forms (``_spec._card_form``), an image's
bytes as base64 text. Times are unix seconds (floats, to the millisecond), ids are text.

Everything in the model comes from a store or an archive, which may come from anyone: it is
kept as plain data, never marked up, and whoever draws it must escape it. A value that cannot
be read, or may not be (a pickle of a run you do not trust is never unpickled), becomes an
``unavailable`` preview saying why and what to do; it never fails the report.

So that a 10,000-task foreach stays small, the limits below bound what the model details;
the timeline keeps every task. They are documented in README ("Run reports").
"""

from __future__ import annotations

import time
from typing import Any

from .._client._report_reads import LiveTask, ReportReader, RunReading
from .._client._run import Run, step_order
from .._errors import StoreError
from .._store._rows import TaskRow
from .._version import __version__
from ._details import Details, ms
from ._graph import graph_model, loop_steps

__all__ = ["FAILED_PER_STEP", "TASKS_PER_STEP", "build_model"]

TASKS_PER_STEP = 50  # tasks of a step detailed: its first ones, by foreach index
FAILED_PER_STEP = 50  # failed tasks detailed besides those (the rest only in the timeline)

_FINISHED = ("succeeded", "failed", "cancelled")


def build_model(run: Run) -> dict[str, Any]:
    """The report model of ``run`` (see the module doc), read as the run is stored now: a
    run still going gives its tasks so far, those running included (from its events).

    Blocking: reads the store in the calling thread, on a connection of its own.

    :raises NotFoundError: the run is no longer in the store.
    :raises StoreError: the store (or archive) cannot be read at all; a single value, card
        or output that cannot be read only shows as unavailable.
    """
    reader = ReportReader(run)
    try:
        model = _build(reader)
        _names_cut(model)
        return model
    finally:
        reader.close()


NAME_CHARS = 200
"""Names (flow, step, artifact, parameter, tag, card id) are cut to this many characters
plus a note of their length: a name has no other limit in a crafted store, and a 2 MB tag
was repeated in a report (found by an attacker)."""

_NAME_KEYS = frozenset({"flow", "name", "pathspec", "foreach_var", "condition", "type", "id"})
_NAME_LISTS = frozenset({"tags", "system_tags", "out", "in"})


def _cut_name(text: str) -> str:
    if len(text) <= NAME_CHARS:
        return text
    return f"{text[:NAME_CHARS]}... ({len(text):,} characters)"


def _names_cut(value: Any) -> None:
    """Cut every name in ``value`` (see :data:`NAME_CHARS`), in place."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str) and key in _NAME_KEYS:
                value[key] = _cut_name(item)
            elif isinstance(item, list) and key in _NAME_LISTS:
                value[key] = [_cut_name(x) if isinstance(x, str) else x for x in item]
            elif key == "cases" and isinstance(item, dict):
                value[key] = {_cut_name(str(k)): _cut_name(str(v)) for k, v in item.items()}
            elif isinstance(item, dict | list):
                _names_cut(item)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict | list):
                _names_cut(item)


def _build(reader: ReportReader) -> dict[str, Any]:
    reading = reader.read_run()
    run = reading.run
    try:
        graph = graph_model(run.graph)
    except StoreError:  # a graph that is not JSON (a damaged file): the tasks still show
        graph = graph_model({})
    live: list[LiveTask] = []
    if run.status not in _FINISHED:
        finished = {row.id for row in reading.tasks}
        live = [
            task
            for task in reader.live_tasks(run, 2 * Details.LOG_CHARS)
            if task.task_id not in finished
        ]
    names = [node["name"] for node in graph["steps"]]
    order = [n for n in step_order({"steps": graph["steps"]}) if n in names]
    by_step: dict[str, list[TaskRow]] = {}
    for row in reading.tasks:
        by_step.setdefault(row.step, []).append(row)
    live_by_step: dict[str, list[LiveTask]] = {}
    for task in live:
        live_by_step.setdefault(task.step, []).append(task)
    order += [n for n in [*by_step, *live_by_step] if n not in order]
    order = list(dict.fromkeys(order))

    chosen = {name: _chosen(by_step.get(name, [])) for name in order}
    wanted = [row.id for rows in chosen.values() for row in rows]
    details = Details(reader, reading)
    extras = reader.extras(wanted, Details.LOG_CHARS, Details.LOG_CHARS) if wanted else {}
    details.load_artifacts(extras)

    looping = loop_steps(graph["steps"])
    status_of_live = "running" if run.status == "running" else run.status
    steps, timeline = [], []
    for index, name in enumerate(order):
        rows, going = by_step.get(name, []), live_by_step.get(name, [])
        passes = _passes(rows) if name in looping else {}
        tasks = [
            details.task(row, extras.get(row.id), passes.get(row.id), run.flow_name)
            for row in chosen[name]
        ]
        room = max(0, TASKS_PER_STEP - len(tasks))
        tasks += [details.live_task(t, status_of_live, run.flow_name, run.id) for t in going[:room]]
        for row in rows:
            timeline.append(
                [index, str(row.id), ms(row.started_at), ms(row.finished_at), row.status,
                 row.attempt]
            )  # fmt: skip
        for t in going:
            timeline.append([index, str(t.task_id), ms(t.started_at), None, status_of_live,
                             t.attempt])  # fmt: skip
        steps.append(_step(name, rows, going, tasks))
    return {
        "format": "asyncflow-report",
        "version": 1,
        "generated_at": ms(time.time()),
        "asyncflow_version": __version__,
        "source": {"kind": "archive" if reading.archive else "store", "name": reader.source_name},
        "run": _run(reading, details, graph),
        "graph": {"start": graph["start"], "end": graph["end"], "steps": graph["steps"]},
        "steps": steps,
        "timeline": timeline,
        "limits": {
            "tasks_per_step": TASKS_PER_STEP,
            "failed_per_step": FAILED_PER_STEP,
            **Details.limits(),
        },
    }


def _chosen(rows: list[TaskRow]) -> list[TaskRow]:
    """The tasks of a step that the model details: the first ones, then failed ones."""
    first = rows[:TASKS_PER_STEP]
    failed = [r for r in rows[TASKS_PER_STEP:] if r.status == "failed"][:FAILED_PER_STEP]
    return first + failed


def _passes(rows: list[TaskRow]) -> dict[int, int]:
    """Each task's pass of a step in a loop: its rank among the step's tasks of the same
    foreach index, by id (a later pass starts later, so gets a larger id)."""
    seen: dict[str, int] = {}
    out = {}
    for row in sorted(rows, key=lambda r: r.id):
        out[row.id] = seen.get(row.path, 0)
        seen[row.path] = out[row.id] + 1
    return out


def _step(
    name: str, rows: list[TaskRow], going: list[LiveTask], tasks: list[dict[str, Any]]
) -> dict[str, Any]:
    starts = [r.started_at for r in rows] + [t.started_at for t in going]
    ends = [r.finished_at for r in rows]
    return {
        "name": name,
        "n_tasks": len(rows) + len(going),
        "n_failed": sum(1 for r in rows if r.status == "failed"),
        "n_running": len(going),
        "started_at": ms(min(starts)) if starts else None,
        "finished_at": ms(max(ends)) if ends and not going else None,
        "tasks": tasks,
        "omitted": len(rows) + len(going) - len(tasks),
    }


def _run(reading: RunReading, details: Details, graph: dict[str, Any]) -> dict[str, Any]:
    run = reading.run
    finished = run.finished_at
    return {
        "flow": run.flow_name,
        "id": run.id,
        "pathspec": run.pathspec,
        "status": run.status,
        "created_at": ms(run.created_at.timestamp()),
        "finished_at": None if finished is None else ms(finished.timestamp()),
        "tags": sorted(run.tags),
        "system_tags": sorted(run.system_tags),
        "error": run.error,
        "origin_run_id": run.origin_run_id,
        "parameters": details.parameters(reading.params, run.pathspec),
        "doc": graph["doc"],
    }
