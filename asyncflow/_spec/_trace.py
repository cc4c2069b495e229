"""The walk from the first step that the graph's split/join structure is read from.

:func:`trace_splits` keeps the stack of splits open on each path; :func:`place_nodes` fills
each node's parents and split/join fields from it (for :func:`._graph.build_graph`), and
:mod:`._validate` checks the rules against it. Loops (a switch leading back) are walked
without their loop edges (:func:`loop_edges`), so the walk always sees a DAG.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, replace

from ._ends import terminal_steps
from ._flowgraph import Node, NodeKind

__all__ = [
    "OpenSplit",
    "SplitTrace",
    "Stack",
    "loop_edges",
    "place_nodes",
    "trace_splits",
]


@dataclass(frozen=True, slots=True)
class OpenSplit:
    """A split open on a path: the split step and the target (branch) the path went through."""

    split: str
    branch: str


Stack = tuple[OpenSplit, ...]


@dataclass(frozen=True, slots=True)
class SplitTrace:
    """The splits open around each step reachable from the first step.

    ``arrivals[step]`` holds one ``(parent, stack)`` per parent, in definition order, where
    ``stack`` is what the parent passes on (its own stack, plus itself if it splits).
    ``inner[step]`` is the stack around the step itself: a join drops the split it closes.
    Loop edges (:func:`loop_edges`) are left out, so the walk sees a DAG; steps on a cycle
    that has no loop edge are left out.
    """

    arrivals: Mapping[str, tuple[tuple[str, Stack], ...]]
    inner: Mapping[str, Stack]


def trace_splits(nodes: Mapping[str, Node]) -> SplitTrace:
    """Walk from the first step in topological order, tracking the stack of open splits.

    :param nodes: the steps by name, in definition order; unknown targets are ignored.
    """
    first = terminal_steps(nodes)[0]
    if first not in nodes:
        return SplitTrace({}, {})
    rank = {name: i for i, name in enumerate(nodes)}
    back = loop_edges(nodes)
    ahead = {n: [t for t in node.out if (n, t) not in back] for n, node in nodes.items()}
    reach: set[str] = set()
    todo = [first]
    while todo:
        name = todo.pop()
        if name in nodes and name not in reach:
            reach.add(name)
            todo.extend(ahead[name])
    pending = dict.fromkeys(reach, 0)
    for name in reach:
        for target in set(ahead[name]) & reach:
            pending[target] += 1
    arrivals: dict[str, list[tuple[str, Stack]]] = {name: [] for name in reach}
    inner: dict[str, Stack] = {}
    ready = [(rank[n], n) for n in reach if pending[n] == 0]
    heapq.heapify(ready)
    while ready:
        _, name = heapq.heappop(ready)
        node = nodes[name]
        came = sorted(arrivals[name], key=lambda a: rank[a[0]])
        arrivals[name] = came
        stack = came[0][1] if came else ()
        inner[name] = stack[:-1] if node.is_join and stack else stack
        splits = node.kind in (NodeKind.SPLIT, NodeKind.FOREACH)
        for target in dict.fromkeys(ahead[name]):
            if target not in reach:
                continue
            passed = (*inner[name], OpenSplit(name, target)) if splits else inner[name]
            arrivals[target].append((name, passed))
            pending[target] -= 1
            if pending[target] == 0:
                heapq.heappush(ready, (rank[target], target))
    done = {n: tuple(a) for n, a in arrivals.items() if n in inner}
    return SplitTrace(arrivals=done, inner=inner)


def loop_edges(nodes: Mapping[str, Node]) -> frozenset[tuple[str, str]]:
    """The edges ``(step, target)`` that lead back to a step on the path from the first step
    (a depth-first walk in ``next()`` order): where each loop goes round. A valid graph's
    cycles all pass through a switch; with these edges left out, the graph is acyclic."""
    first = terminal_steps(nodes)[0]
    back: set[tuple[str, str]] = set()
    if first not in nodes:
        return frozenset()
    on_path, done = {first}, set()
    path, todo = [first], [iter(nodes[first].out)]
    while todo:
        target = next(todo[-1], None)
        if target is None:
            name = path.pop()
            on_path.discard(name)
            done.add(name)
            todo.pop()
        elif target in on_path:
            back.add((path[-1], target))
        elif target in nodes and target not in done:
            on_path.add(target)
            path.append(target)
            todo.append(iter(nodes[target].out))
    return frozenset(back)


def place_nodes(nodes: Mapping[str, Node]) -> dict[str, Node]:
    """The nodes with their parents and split/join fields filled in from :func:`trace_splits`.

    Tolerates broken graphs (the fields are then a best guess); :func:`validate` says why.
    """
    traced = trace_splits(nodes)
    placed: dict[str, Node] = {}
    for name, node in nodes.items():
        inner = traced.inner.get(name, ())
        came = traced.arrivals.get(name, ())
        parents = [p for p, other in nodes.items() if name in other.out]
        closes = join_kind = None
        if node.is_join and came and came[0][1]:
            closes = came[0][1][-1].split
            split = nodes[closes]
            join_kind = "foreach" if split.kind is NodeKind.FOREACH else "static"
            if join_kind == "static":
                # A join's inputs follow the split's next() order, whichever branch ends first.
                branch = {p: s[-1].branch for p, s in came if s and s[-1].split == closes}
                rank = {b: i for i, b in enumerate(split.out)}
                parents.sort(key=lambda p: rank.get(branch.get(p, ""), len(rank)))
        placed[name] = replace(
            node,
            in_=tuple(parents),
            closes=closes,
            join_kind=join_kind,
            split_parents=tuple(o.split for o in inner),
            foreach_depth=sum(nodes[o.split].kind is NodeKind.FOREACH for o in inner),
        )
    for name, node in list(placed.items()):
        if node.closes is not None and placed[node.closes].matching_join is None:
            placed[node.closes] = replace(placed[node.closes], matching_join=name)
    return placed
