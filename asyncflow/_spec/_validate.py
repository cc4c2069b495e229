"""The rules a flow graph must follow, each with a message that names the step and the fix.

:func:`validate` checks in three rounds and reports every problem of the first round that
finds any (later rounds would only repeat its consequences):

1. names and targets: reserved or invalid step names, one first and one last step (named
   ``start`` and ``end``, or marked ``@step(start=True)`` / ``@step(end=True)``), a
   ``self.next`` on every step but the last, targets that exist, no duplicate target, one
   foreach target; a switch's condition names an artifact;
2. shape: every cycle passes through a switch (a loop), every step reachable from the first
   step, a loop stays inside the splits it starts in, the last step reachable from every step;
3. splits and joins: each join closes exactly one split and is reached by all its branches
   and only them; only joins take ``inputs``; a step with several parents is a join (but for
   the branches of a switch, which meet again without one: only one of them runs); a join
   leaves by a linear ``next`` or a switch; every split is joined.

Rounds 2 and 3 and :func:`._graph.build_graph` share :func:`._trace.trace_splits`, which walks
the graph from the first step keeping the stack of splits open on each path.
"""

from __future__ import annotations

import difflib
from typing import NoReturn

from .._errors import FlowValidationError
from ._ends import DEFAULT_END, DEFAULT_START, terminal_steps
from ._flowgraph import FlowGraph, Node, NodeKind
from ._names import RESERVED_NAMES, is_plain_name
from ._trace import SplitTrace, Stack, loop_edges, trace_splits

__all__ = ["raise_problems", "validate"]


def raise_problems(flow: str, problems: list[FlowValidationError]) -> NoReturn:
    """Raise the one problem, or all of them in one error whose ``.step`` is the first's."""
    if len(problems) == 1:
        raise problems[0]
    listed = "\n".join(f"  - {p}" for p in problems)
    raise FlowValidationError(
        f"Flow {flow} has {len(problems)} problems:\n{listed}", problems[0].step
    )


def validate(graph: FlowGraph) -> None:
    """Check every rule on a built graph.

    :raises FlowValidationError: naming the step, its ``file:line``, the rule and the fix;
        when several steps break rules of the same round, one error lists them all.
    """
    for check in (_check_names, _check_shape, _check_splits, _check_policies):
        problems = check(graph)
        if problems:
            raise_problems(graph.name, problems)


def _check_policies(graph: FlowGraph) -> list[FlowValidationError]:
    # A caught failure goes on to the step's next steps; a foreach split that failed has
    # no list to fan out over, so there is nothing to go on to.
    # Nor has a switch that failed a condition value to choose its branch by.
    return [
        _error(
            node,
            "@catch is on a foreach split, which cannot continue without its list",
            "move the work that may fail into a step before the split, and @catch that one",
        )
        for node in graph
        if _catches(node) and node.kind is NodeKind.FOREACH
    ] + [
        _error(
            node,
            "@catch is on a switch, which cannot choose a branch once it failed",
            "move the work that may fail into a step before the switch, and @catch that one",
        )
        for node in graph
        if _catches(node) and node.kind is NodeKind.SWITCH
    ]


def _catches(node: Node) -> bool:
    """Whether ``node`` has ``@catch``, written or with config_expr arguments (pending)."""
    return node.info.catch is not None or any(p.name == "catch" for p in node.info.pending)


def _error(node: Node, what: str, fix: str, *, at_next: bool = False) -> FlowValidationError:
    where = node.where if at_next else node.info.where
    return FlowValidationError(f"Step '{node.name}' at {where}: {what}; {fix}.", node.name)


def _check_names(graph: FlowGraph) -> list[FlowValidationError]:
    problems: list[FlowValidationError] = []
    fix = "rename the step"
    for node in graph:
        name = node.name
        if not is_plain_name(name):
            problems.append(_error(node, f"'{name}' is not a valid Python identifier", fix))
        elif name.startswith("_"):
            problems.append(_error(node, "a step name may not start with '_'", fix))
        elif name in RESERVED_NAMES:
            problems.append(_error(node, f"'{name}' is reserved: every flow has it", fix))
    problems += _check_ends(graph)
    known = ", ".join(graph.nodes)
    for node in graph:
        problems += _check_targets(graph, node, known)
    return problems


def _check_ends(graph: FlowGraph) -> list[FlowValidationError]:
    """The first and last steps: one of each, found, and shaped as first and last steps."""
    problems: list[FlowValidationError] = []
    anywhere = next(iter(graph), None)
    file = f" ({anywhere.info.file})" if anywhere else ""
    first, last = terminal_steps(graph.nodes)
    for label, default, name in (("start", DEFAULT_START, first), ("end", DEFAULT_END, last)):
        marked = [n for n in graph if getattr(n.info, f"marked_{label}")]
        if len(marked) > 1:
            names = ", ".join(f"'{n.name}' ({n.info.where})" for n in marked)
            problems.append(
                FlowValidationError(
                    f"Flow {graph.name}{file} marks {len(marked)} steps with "
                    f"@step({label}=True): {names}; a flow has one {_ROLE[label]} step, so "
                    f"keep {label}=True on one of them.",
                    marked[1].name,
                )
            )
        elif marked and default in graph and default != name:
            node = graph[default]
            what = (
                f"the step is named {default}, but the flow's {_ROLE[label]} step is "
                f"'{name}' (marked @step({label}=True) at {graph[name].info.where})"
            )
            fix = f"rename this step, or move {label}=True onto it and drop the other mark"
            problems.append(_error(node, what, fix))
        elif name not in graph:
            problems.append(
                FlowValidationError(
                    f"Flow {graph.name}{file} has no step named '{default}'; every flow "
                    "begins at start and finishes at end, so add an @step method with that "
                    f"name, or mark the step that plays its part @step({label}=True).",
                    default,
                )
            )
    if first in graph and graph[first].is_join:
        node = graph[first]
        what = f"{first} takes inputs, yet it is the first step"
        problems.append(_error(node, what, f"define it as `def {first}(self)`"))
    if last in graph:
        node = graph[last]
        if node.out:
            what = f"{last} calls self.next(...), yet {last} finishes the flow"
            problems.append(_error(node, what, "remove the call", at_next=True))
        if node.is_join and last != first:
            what = f"{last} takes inputs, yet {last} cannot be a join"
            fix = f"add a join step that takes inputs and calls self.next(self.{last})"
            problems.append(_error(node, what, fix))
    return problems


_ROLE = {"start": "first", "end": "last"}


def _check_targets(graph: FlowGraph, node: Node, known: str) -> list[FlowValidationError]:
    if node.kind is NodeKind.END:
        if node.name in (graph.end_step, DEFAULT_END) or node.info.marked_end:
            return []  # the last step, or one that _check_ends already reports
        what = "the step does not end with self.next(...)"
        fix = (
            "finish it with self.next(self.<step>) naming what runs next; "
            f"only {graph.end_step} has none"
        )
        return [_error(node, what, fix)]
    problems = []
    for target in dict.fromkeys(node.out):
        if target not in graph:
            close = difflib.get_close_matches(target, list(graph.nodes), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            what = f"self.next names self.{target}, which is not a step{hint}"
            fix = f"name one of the steps: {known}"
            problems.append(_error(node, what, fix, at_next=True))
        elif node.out.count(target) > 1:
            what = f"self.next names '{target}' more than once"
            fix = "name each target once; a static split needs two or more distinct steps"
            problems.append(_error(node, what, fix, at_next=True))
    if node.kind is NodeKind.SWITCH:
        var = node.condition or ""
        why = None
        if not is_plain_name(var):
            why = "is not an attribute name"
        elif var.startswith("_"):
            why = "starts with '_', and such names are not artifacts"
        elif var in RESERVED_NAMES:
            why = "is reserved: every flow has it"
        if why is not None:
            what = f"condition={var!r} {why}"
            fix = 'name the artifact set on self whose value picks the case, e.g. condition="mode"'
            problems.append(_error(node, what, fix, at_next=True))
    if node.kind is NodeKind.FOREACH:
        var = node.foreach_var or ""
        if len(node.out) != 1:
            what = f"a foreach must have exactly one target, not {len(node.out)}"
            fix = f'write self.next(self.<step>, foreach="{var}") and split again inside it'
            problems.append(_error(node, what, fix, at_next=True))
        if not is_plain_name(var):
            what = f"foreach={var!r} is not an attribute name"
            fix = 'name the artifact (a list or other iterable) set on self, e.g. foreach="items"'
            problems.append(_error(node, what, fix, at_next=True))
    return problems


def _check_shape(graph: FlowGraph) -> list[FlowValidationError]:
    problems: list[FlowValidationError] = []
    colour: dict[str, int] = {}  # 1 while on the current path, 2 once finished

    def ahead(name: str) -> tuple[str, ...]:  # a switch may loop: its edges are not followed
        node = graph[name]
        return () if node.kind is NodeKind.SWITCH else node.out

    for root in graph.nodes:
        if root in colour:
            continue
        path: list[str] = [root]
        colour[root] = 1
        todo = [iter(ahead(root))]
        while todo:
            target = next(todo[-1], None)
            if target is None:
                colour[path.pop()] = 2
                todo.pop()
            elif colour.get(target) == 1:
                loop = " -> ".join([*path[path.index(target) :], target])
                node = graph[path[-1]]
                what = f"the steps form a cycle ({loop}) that passes through no switch"
                fix = (
                    "a step may lead back to itself or an earlier step only through a switch, "
                    'self.next({"again": self.<step>, "done": self.<next step>}, '
                    'condition="<artifact>"), so that the loop can end'
                )
                problems.append(_error(node, what, fix, at_next=True))
            elif target not in colour:
                colour[target] = 1
                path.append(target)
                todo.append(iter(ahead(target)))
    if problems:
        return problems
    traced = trace_splits(graph.nodes)
    reach = traced.inner
    for node in graph:
        if node.name not in reach:
            what = f"the step is never reached from {graph.start_step}"
            fix = f"call self.next(self.{node.name}) from another step, or remove its @step"
            problems.append(_error(node, what, fix))
    if problems:
        return problems
    return _check_loops(graph, traced)


def _check_loops(graph: FlowGraph, traced: SplitTrace) -> list[FlowValidationError]:
    """Each loop stays inside the splits it starts in, and every step can reach the end."""
    problems: list[FlowValidationError] = []
    for source, target in sorted(loop_edges(graph.nodes)):
        node, back = graph[source], graph[target]
        why = None
        if node.kind in (NodeKind.SPLIT, NodeKind.FOREACH):
            why = f"'{source}' opens a split, whose branches must reach its join"
        elif back.is_join:
            why = f"'{target}' is a join, whose inputs come from the branches of a split"
        elif traced.inner.get(target) != traced.inner.get(source):
            why = (
                f"'{target}' is not inside the same split or foreach as '{source}' (a loop "
                "may not leave or enter a split, nor go round a foreach's body alone)"
            )
        if why is not None:
            what = f"it loops back to '{target}', but {why}"
            fix = (
                "loop back to a step that is inside the same splits as the switch, or join "
                "the split first and loop back to a step before it"
            )
            problems.append(_error(node, what, fix, at_next=True))
    last = graph.end_step
    leads_on = {last}
    todo = [last]
    while todo:
        name = todo.pop()
        for parent in graph:
            if name in parent.out and parent.name not in leads_on:
                leads_on.add(parent.name)
                todo.append(parent.name)
    for node in graph:
        if node.name not in leads_on:
            what = f"{last} can never be reached from here: every way on loops back"
            fix = "give a switch of the loop a case that leads on, towards " + last
            problems.append(_error(node, what, fix))
    return problems


def _check_splits(graph: FlowGraph) -> list[FlowValidationError]:
    problems: list[FlowValidationError] = []
    traced = trace_splits(graph.nodes)
    last = graph.end_step
    attempted: set[str] = set()  # splits some step tries to join, well or badly
    for node in graph:
        came = traced.arrivals.get(node.name, ())
        stacks = [stack for _, stack in came]
        if node.is_join or len(came) > 1:
            attempted.update(stack[-1].split for stack in stacks if stack)
        parents = ", ".join(p for p, _ in came)
        if len(came) > 1 and not node.is_join and len(set(stacks)) == 1:
            continue  # the branches of a switch meet: one of them ran
        if not node.is_join:
            if len(came) > 1 and node.name == last:
                what = f"{last} has {len(came)} parents ({parents}) but cannot take inputs"
                fix = f"add a join step `def join(self, inputs)` between them and {last}"
                problems.append(_error(node, what, fix))
            elif len(came) > 1:
                what = f"{len(came)} steps lead here ({parents}) but the step takes no inputs"
                fix = f"make it a join: `def {node.name}(self, inputs)`"
                problems.append(_error(node, what, fix))
            continue
        if node.kind not in (NodeKind.LINEAR, NodeKind.SWITCH) and node.name != last:
            what = "a join may not split again"
            fix = "end the join with self.next(self.<step>) and split in that next step"
            problems.append(_error(node, what, fix, at_next=True))
        problems += _check_join(graph, node, came)
    for node in graph:
        opens = node.kind in (NodeKind.SPLIT, NodeKind.FOREACH)
        if opens and node.name in traced.inner and node.name not in attempted:
            what = f"its branches ({', '.join(node.out)}) are never joined"
            fix = "lead every branch to one step that takes inputs, e.g. `def join(self, inputs)`"
            problems.append(_error(node, what, fix, at_next=True))
    return problems


def _check_join(
    graph: FlowGraph, node: Node, came: tuple[tuple[str, Stack], ...]
) -> list[FlowValidationError]:
    if not came:
        return []
    stacks = [stack for _, stack in came]
    if not any(stacks):
        what = "the step takes inputs but joins no split"
        fix = f"remove the inputs parameter: `def {node.name}(self)`"
        return [_error(node, what, fix)]
    keys = {(stack[:-1], stack[-1].split) if stack else None for stack in stacks}
    if len(keys) > 1:
        seen = [f"{p} from {s[-1].split if s else 'outside any split'}" for p, s in came]
        what = f"the step joins branches of different splits ({'; '.join(seen)})"
        if len({len(s) for s in stacks}) > 1:
            deepest = max(stacks, key=len)[-1].split
            fix = f"close '{deepest}' with its own join inside its branch first"
        else:
            inner = ", ".join(f"'{s}'" for s in dict.fromkeys(s[-1].split for s in stacks))
            fix = f"give each of the splits {inner} its own join inside its branch"
        fix = "a join closes exactly one split, so " + fix
        return [_error(node, what, fix)]
    split = graph[stacks[0][-1].split]
    branches = [stack[-1].branch for stack in stacks]
    if node.name in branches:
        what = f"the step is a direct target of '{split.name}', the split it joins"
        fix = "put at least one step in every branch, between the split and the join"
        return [_error(node, what, fix)]
    expected = split.out[:1] if split.kind is NodeKind.FOREACH else split.out
    missing = [b for b in expected if b not in branches]
    if missing:
        what = (
            f"it joins split '{split.name}' ({split.info.where}) but branch(es) "
            f"{', '.join(missing)} never lead here"
        )
        fix = (
            f"end the last step of every branch of '{split.name}' with self.next(self.{node.name})"
        )
        return [_error(node, what, fix)]
    if len(branches) != len(expected):
        source = (
            "the foreach body"
            if split.kind is NodeKind.FOREACH
            else (f"the {len(expected)} branches")
        )
        what = f"{len(branches)} steps lead here from {source} of '{split.name}'"
        fix = "join any split inside a branch before the branch ends"
        if len(set(stacks)) < len(stacks):
            fix = (
                "let the cases of a switch inside a branch (or a foreach) meet in a step "
                "before the join"
            )
        return [_error(node, what, fix)]
    return []
