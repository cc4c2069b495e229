"""The flow graph as data: :class:`FlowGraph`, its :class:`Node` s and their renderings.

:func:`._graph.build_graph` reads a flow class into a :class:`FlowGraph` and
:mod:`._validate` checks it; the runtime, the client and ``show`` read it. The types live
apart from the builder so that the builder's helpers (``_validate``, ``_ends``) can use them
without importing the builder.
"""

from __future__ import annotations

import enum
import json
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ._ends import DEFAULT_END, DEFAULT_START, terminal_steps
from ._placement import effective_resources
from ._step import StepInfo

__all__ = ["FlowGraph", "Node", "NodeKind"]


class NodeKind(enum.Enum):
    """How a step leaves: which form of ``self.next`` it ends with."""

    LINEAR = "linear"  # self.next(self.a)
    SPLIT = "split"  # self.next(self.a, self.b, ...)
    FOREACH = "foreach"  # self.next(self.a, foreach="items")
    SWITCH = "switch"  # self.next({"x": self.a, "y": self.b}, condition="choice")
    END = "end"  # no self.next: the end step


@dataclass(frozen=True, slots=True)
class Node:
    """One step of a flow and its place in the graph.

    ``in_`` lists the parent steps: for the join of a static split, in the order of the
    split's ``next()`` targets (the branch each parent ends); otherwise in definition order.
    ``split_parents`` are the splits still open around the step, outermost first (a join is
    outside the split it closes); ``foreach_depth`` counts the foreach splits among them.
    """

    name: str
    kind: NodeKind
    out: tuple[str, ...]
    foreach_var: str | None
    is_join: bool
    in_: tuple[str, ...]
    join_kind: str | None  # "static" or "foreach", for joins
    closes: str | None  # the split a join closes
    matching_join: str | None  # the join that closes a split or foreach
    foreach_depth: int
    split_parents: tuple[str, ...]
    info: StepInfo
    doc: str | None
    next_line: int | None  # line of the self.next call, for messages
    condition: str | None = None  # a switch's artifact
    cases: tuple[tuple[str, str], ...] = ()  # a switch's (value, step) pairs, in source order
    # A coroutine step's every ``<expr>.<name>`` read in its source (a superset of its
    # artifact reads: what is prefetched before it starts), found once, with the graph. None
    # for a plain step (only a Dask run needs it: ``RunContext.step_reads`` reads it then).
    reads: frozenset[str] | None = None

    @property
    def where(self) -> str:
        """``file:line`` of the step's ``self.next`` call, else of its ``def``."""
        line = self.next_line if self.next_line is not None else self.info.line
        return f"{self.info.file}:{line}"


@dataclass(frozen=True, slots=True)
class FlowGraph:
    """The immutable graph of a flow class.

    ``graph["train"]`` is a :class:`Node`; iterating a graph yields its nodes in definition
    order; ``"train" in graph`` tests a step name; ``len(graph)`` counts the steps.
    ``nodes`` is a read-only mapping from step name to node, in definition order.
    """

    name: str
    doc: str | None
    nodes: Mapping[str, Node]

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes.values())

    def __len__(self) -> int:
        return len(self.nodes)

    def __contains__(self, name: object) -> bool:
        return name in self.nodes

    @property
    def start_step(self) -> str:
        """The name of the first step (``start``, or the step marked ``@step(start=True)``)."""
        return terminal_steps(self.nodes)[0]

    @property
    def end_step(self) -> str:
        """The name of the last step (``end``, or the step marked ``@step(end=True)``)."""
        return terminal_steps(self.nodes)[1]

    def to_json(self) -> dict[str, Any]:
        """A JSON-able description of the graph, persisted with each run."""
        return {
            "name": self.name,
            "doc": self.doc,
            "start_step": self.start_step,
            "end_step": self.end_step,
            "steps": [
                {
                    "name": n.name,
                    "kind": n.kind.value,
                    "out": list(n.out),
                    "in": list(n.in_),
                    "foreach_var": n.foreach_var,
                    "is_join": n.is_join,
                    "join_kind": n.join_kind,
                    "closes": n.closes,
                    "matching_join": n.matching_join,
                    "foreach_depth": n.foreach_depth,
                    "split_parents": list(n.split_parents),
                    **({"condition": n.condition, "cases": dict(n.cases)} if n.cases else {}),
                    "is_async": n.info.is_async,
                    "file": n.info.file,
                    "line": n.info.line,
                    "doc": n.doc,
                    **_placement_json(n.info),
                }
                for n in self
            ],
        }

    def to_text(self) -> str:
        """The graph as readable text: the flow's docstring, then each step, its doc and arrow."""
        lines = [self.name]
        first, last = terminal_steps(self.nodes)
        if self.doc:
            lines += [textwrap.indent(self.doc, "    "), ""]
        for n in self:
            notes = ["async"] if n.info.is_async else []
            if n.name == first != DEFAULT_START:
                notes.append("the first step: start=True")
            if n.name == last != DEFAULT_END:
                notes.append("the last step: end=True")
            if n.is_join and n.closes is not None:
                what = "foreach" if n.join_kind == "foreach" else "split"
                notes.append(f"joins the {what} of {n.closes}")
            lines.append(f"step {n.name}" + (f"  ({'; '.join(notes)})" if notes else ""))
            if n.doc:
                lines.append(textwrap.indent(n.doc, "    "))
            lines += [f"    {_arrow(n)}", ""]
        return "\n".join(lines).rstrip() + "\n"

    def to_mermaid(self) -> str:
        """The graph as a Mermaid flowchart (``flowchart TD``)."""
        # Node ids get a prefix: "end" is a Mermaid keyword and would break the chart.
        lines = ["flowchart TD"]
        ends = terminal_steps(self.nodes)
        for n in self:
            label = json.dumps(n.name)
            if n.name in ends:
                shape = f"([{label}])"
            elif n.kind in (NodeKind.SPLIT, NodeKind.FOREACH, NodeKind.SWITCH):
                shape = f"{{{{{label}}}}}"
            else:
                shape = f"[{label}]"
            lines.append(f"    s_{n.name}{shape}")
        for n in self:
            for value, target in n.cases:
                label = json.dumps(f"{n.condition} = {value}")
                lines.append(f"    s_{n.name} -->|{label}| s_{target}")
            for target in () if n.cases else n.out:
                edge = f'-->|"foreach({n.foreach_var})"|' if n.foreach_var else "-->"
                lines.append(f"    s_{n.name} {edge} s_{target}")
        return "\n".join(lines) + "\n"


def _arrow(node: Node) -> str:
    if node.kind is NodeKind.END:
        return f"{node.name} (the flow ends here)"
    if node.kind is NodeKind.FOREACH:
        return f"{node.name} --foreach({node.foreach_var})--> {', '.join(node.out)}"
    if node.kind is NodeKind.SWITCH:
        cases = ", ".join(f"{value!r}: {target}" for value, target in node.cases)
        return f"{node.name} --switch({node.condition})--> {{{cases}}}"
    if node.kind is NodeKind.SPLIT:
        return f"{node.name} --split--> {', '.join(node.out)}"
    return f"{node.name} --> {node.out[0]}"


def _placement_json(info: StepInfo) -> dict[str, Any]:
    # Where and how the step ran, stored with each run (read back by ``task.resources``).
    out: dict[str, Any] = {}
    resources = effective_resources(info)
    if resources is not None:
        out["resources"] = resources.to_json()
    if info.compute is not None:
        out["compute"] = info.compute.name
    if info.environment:
        out["environment"] = [name for name, _ in info.environment]  # names, never values
    return out
