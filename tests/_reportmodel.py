"""A hand-made report model (the schema i14-model's ``build_model`` returns), for the page
tests that need no store: every kind of step, preview and card component, a failed and
retried task, and a hook to put a hostile string in every text field."""

from __future__ import annotations

import base64
from typing import Any

T0 = 1_760_000_000.0

# A 2x2 PNG (red), and an SVG with a script in it (drawn as an <img>, so it never runs).
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP4z8DAwMDAxMDAwMDAAAANBAEA"
    "6JkV1wAAAABJRU5ErkJggg=="
)
SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20">'
    b'<script>document.title="SVGRAN"</script><rect width="40" height="20" fill="teal"/></svg>'
)


def _task(step: str, tid: int, status: str = "succeeded", **extra: Any) -> dict[str, Any]:
    start = T0 + tid
    task: dict[str, Any] = {
        "id": str(tid),
        "pathspec": f"DemoFlow/7/{step}/{tid}",
        "status": status,
        "started_at": start,
        "finished_at": start + 0.5,
        "index": None,
        "pass": None,
        "attempts": [{"n": 0, "started_at": start, "finished_at": start + 0.5, "ok": True}],
        "artifacts": [],
        "stdout": "",
        "stderr": "",
        "exception": None,
        "traceback": None,
        "cards": [],
    }
    task.update(extra)
    return task


def demo_model(text: str = "", n_items: int = 3) -> dict[str, Any]:
    """A model of a finished-with-failure run of a flow start -> fan (foreach) -> work ->
    join -> pick (switch) -> end; ``text`` is appended to every string a store supplies."""

    def s(value: str) -> str:
        return value + text

    work_tasks = [
        _task(
            "work",
            10 + i,
            index=i,
            artifacts=[
                {
                    "name": s("matrix"),
                    "type": "numpy.ndarray",
                    "preview": {
                        "kind": "array",
                        "shape": [3, 4],
                        "dtype": "float64",
                        "min": "0.0",
                        "max": s("11.0"),
                        "slice": s("[[0. 1. 2. 3.]\n [4. 5. 6. 7.]\n ...]"),
                    },
                },
                {"name": "item", "type": "int", "preview": {"kind": "text", "text": str(i)}},
            ],
            stdout=s(f"working on item {i}\n"),
        )
        for i in range(n_items)
    ]
    work_tasks[-1].update(
        status="failed",
        exception=s("ValueError: item 2 is bad"),
        traceback=s('Traceback (most recent call last):\n  File "demo.py", line 9\nValueError'),
        stderr=s("about to fail\n"),
        attempts=[
            {"n": 0, "started_at": T0 + 12, "finished_at": T0 + 12.2, "ok": False},
            {"n": 1, "started_at": T0 + 12.3, "finished_at": T0 + 12.5, "ok": False},
        ],
    )
    card = {
        "id": s("scores"),
        "type": "default",
        "components": [
            {
                "kind": "markdown",
                "text": s(
                    "# Scores heading\n\nSome *emphasis* and `code` and a "
                    "[safe link](https://example.org/x) and a "
                    "[bad link](javascript:alert(1)), a [wiki](https://en.wikipedia.org/wiki/"
                    "Python_(language)) link and ![a logo](https://example.org/logo.png)."
                    "\n\n- first item\n- second item"
                ),
            },
            {"kind": "table", "headers": [s("train"), "test"], "rows": [[s("0.91"), "0.88"]]},
            {
                "kind": "image",
                "mime": "image/png",
                "data": base64.b64encode(PNG).decode(),
                "label": s("a red square"),
            },
            {
                "kind": "image",
                "mime": "image/svg+xml",
                "data": base64.b64encode(SVG).decode(),
                "label": None,
            },
            {
                "kind": "artifact",
                "name": s("frame"),
                "preview": {
                    "kind": "table",
                    "headers": ["a", "b"],
                    "rows": [["1", "2"]],
                    "total_rows": 40,
                },
            },
            {"kind": "error", "message": s("Image(...) bytes are not PNG, JPEG, GIF or SVG")},
            # Not a card as asyncflow stores one (a hostile archive's): shown as an error.
            {"kind": "image", "mime": "text/html", "data": "PGI+aGk8L2I+", "label": None},
        ],
    }
    start_task = _task(
        "start",
        1,
        artifacts=[
            {
                "name": s("items"),
                "type": "list",
                "preview": {"kind": "text", "text": s("[0, 1, 2]")},
            },
            {
                "name": "blob",
                "type": "Secret",
                "preview": {"kind": "unavailable", "text": s("an untrusted pickle: not loaded")},
            },
        ],
        cards=[card],
    )
    steps = [
        ("start", [start_task], 0),
        ("fan", [_task("fan", 2)], 0),
        ("work", work_tasks, 5),
        ("join", [], 0),
        ("pick", [], 0),
        ("low", [], 0),
        ("high", [], 0),
        ("end", [], 0),
    ]
    model_steps = []
    timeline: list[list[Any]] = []
    for index, (name, tasks, omitted) in enumerate(steps):
        for t in tasks:
            retries = len(t["attempts"]) - 1
            timeline.append(
                [index, t["id"], t["started_at"], t["finished_at"], t["status"], retries]
            )
        for k in range(omitted):
            tid = str(100 + k)
            timeline.append([index, tid, T0 + 3 + k * 0.1, T0 + 3.4 + k * 0.1, "succeeded", 0])
        model_steps.append(
            {
                "name": s(name) if name not in ("start", "end") else name,
                "n_tasks": len(tasks) + omitted,
                "n_failed": sum(t["status"] == "failed" for t in tasks),
                "n_running": 0,
                "started_at": tasks[0]["started_at"] if tasks else None,
                "finished_at": tasks[-1]["finished_at"] if tasks else None,
                "tasks": tasks,
                "omitted": omitted,
            }
        )
    names = [st["name"] for st in model_steps]
    start, fan, work, join, pick, low, high, end = names
    graph_steps = [
        {"name": start, "kind": "linear", "out": [fan], "in": [], "doc": s("Begin.")},
        {"name": fan, "kind": "foreach", "out": [work], "in": [start], "foreach_var": s("items")},
        {"name": work, "kind": "linear", "out": [join], "in": [fan]},
        {"name": join, "kind": "linear", "out": [pick], "in": [work], "is_join": True},
        {
            "name": pick,
            "kind": "switch",
            "out": [low, high],
            "in": [join, low],
            "condition": s("choice"),
            "cases": {s("small"): low, s("big"): high},
        },
        {"name": low, "kind": "linear", "out": [pick], "in": [pick]},
        {"name": high, "kind": "linear", "out": [end], "in": [pick]},
        {"name": end, "kind": "end", "out": [], "in": [high]},
    ]
    for g in graph_steps:
        for key in ("foreach_var", "condition", "cases", "doc"):
            g.setdefault(key, None)
    return {
        "format": "asyncflow-report",
        "version": 1,
        "generated_at": T0 + 100,
        "asyncflow_version": "0.1.0",
        "source": {"kind": "archive", "name": s("demo.afar")},
        "run": {
            "flow": s("DemoFlow"),
            "id": "7",
            "pathspec": "DemoFlow/7",
            "status": "failed",
            "created_at": T0,
            "finished_at": T0 + 20,
            "tags": [s("nightly")],
            "system_tags": ["user:tester"],
            "error": s("step work failed: ValueError: item 2 is bad"),
            "origin_run_id": None,
            "parameters": [{"name": s("alpha"), "preview": {"kind": "text", "text": s("0.5")}}],
            "doc": s("A demo flow."),
        },
        "graph": {"start": start, "end": end, "steps": graph_steps},
        "steps": model_steps,
        "timeline": timeline,
    }
