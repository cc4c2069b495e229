"""The graph part of the report model, from the graph JSON stored with a run.

The stored graph may come from an archive made by anyone: only the fields the model names
are kept, each of the kind the schema says (text, a list of text, a map of text to text,
or None), whatever else the file holds.
"""

from __future__ import annotations

from typing import Any

__all__ = ["graph_model", "loop_steps"]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _texts(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _cases(value: Any) -> dict[str, str] | None:
    if not isinstance(value, dict):
        return None
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


def graph_model(graph: Any) -> dict[str, Any]:
    """``{"start", "end", "doc", "steps": [...]}`` of a stored graph (see ``_model``)."""
    graph = graph if isinstance(graph, dict) else {}
    steps = []
    seen: set[str] = set()
    for node in graph.get("steps") or ():
        if not isinstance(node, dict) or not isinstance(node.get("name"), str):
            continue
        if node["name"] in seen:
            continue
        seen.add(node["name"])
        steps.append(
            {
                "name": node["name"],
                "kind": _text(node.get("kind")) or "linear",
                "out": _texts(node.get("out")),
                "in": _texts(node.get("in")),
                "foreach_var": _text(node.get("foreach_var")),
                "condition": _text(node.get("condition")),
                "cases": _cases(node.get("cases")),
                "doc": _text(node.get("doc")),
            }
        )
    return {
        "start": _text(graph.get("start_step")) or "start",
        "end": _text(graph.get("end_step")) or "end",
        "doc": _text(graph.get("doc")),
        "steps": steps,
    }


def loop_steps(steps: list[dict[str, Any]]) -> set[str]:
    """The names of the steps on a cycle of the graph (a loop: a switch case leading back),
    which may run more than once for the same foreach index."""
    out_of = {node["name"]: node["out"] for node in steps}
    looping = set()
    for name in out_of:
        stack, seen = list(out_of[name]), set()
        while stack:
            nxt = stack.pop()
            if nxt == name:
                looping.add(name)
                break
            if nxt not in seen and nxt in out_of:
                seen.add(nxt)
                stack.extend(out_of[nxt])
    return looping
