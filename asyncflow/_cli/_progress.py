"""What ``run`` and ``resume`` show while a run goes: the state of its steps, made from the
run's events (:class:`StepBoard`), as finished-step and failure lines and as the rows of a
live display. No I/O here (``_live`` draws it).

A step is *finished* when no task of it can start any more: its parent steps are finished
and it has finished as many tasks as they lead to — one for the first step; the foreach's
total (``StepProgress``) for a foreach's body step; one per task of the split for a join;
else one per successful task of its one parent. A step that cannot be worked out that way
(a loop in the graph) is reported with the run's end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .._spec._flowgraph import FlowGraph, NodeKind
from .._store._events import (
    Event,
    RunFinished,
    RunStarted,
    StepProgress,
    TaskFinished,
    TaskRetrying,
    TaskStarted,
)
from ._format import printable

__all__ = ["Row", "StepBoard", "row_text", "seconds"]

_DONE = ("succeeded", "caught")


def seconds(value: float) -> str:
    """``0.42s``, ``12.3s``, ``3m 05s``."""
    if value < 10:
        return f"{value:.2f}s"
    if value < 60:
        return f"{value:.1f}s"
    minutes, secs = divmod(int(value), 60)
    return f"{minutes}m {secs:02d}s"


@dataclass(slots=True)
class _Step:
    name: str
    active: set[str] = field(default_factory=set)  # pathspecs of its running tasks
    done: int = 0
    failed: int = 0
    total: int | None = None  # from StepProgress: a foreach's body step
    first: float | None = None  # epoch seconds of its first event
    last: float | None = None  # of its last TaskFinished
    reported: bool = False

    @property
    def running(self) -> int:
        return len(self.active)


@dataclass(frozen=True, slots=True)
class Row:
    """One active step of the live display."""

    step: str
    done: int
    failed: int
    running: int
    total: int | None  # None: not known yet
    elapsed: float


class StepBoard:
    """The steps of one run as its events tell them (see the module doc)."""

    def __init__(self, graph: FlowGraph) -> None:
        self.graph = graph
        self.run = ""  # "Flow/12" once RunStarted is seen
        self.status: str | None = None  # RunFinished's
        self.began = time.time()
        self._steps = {node.name: _Step(node.name) for node in graph}
        self._order = _topological(graph)

    # --- feeding ---------------------------------------------------------------------------
    def feed(self, ev: Event) -> list[str]:
        """Take one event; the lines it completes (finished steps, failures), printable."""
        if isinstance(ev, RunStarted):
            self.run = f"{ev.flow}/{ev.run_id}"
            self.began = ev.at.timestamp()
            return []
        if isinstance(ev, TaskStarted):
            step = self._step(ev.step)
            step.active.add(ev.pathspec)
            if step.first is None:
                step.first = ev.at.timestamp()
            return []
        if isinstance(ev, TaskFinished):
            return self._finished(ev)
        if isinstance(ev, TaskRetrying):
            return [
                printable(
                    f"task {ev.pathspec} attempt {ev.attempt + 1} failed: {ev.error}; "
                    f"retrying in {seconds(ev.delay)}"
                )
            ]
        if isinstance(ev, StepProgress):
            self._step(ev.step).total = ev.total
            return self._completed()
        if isinstance(ev, RunFinished):
            self.status = ev.status
            return [self._line(s) for s in self._steps.values() if self._left_open(s)]
        return []

    def _step(self, name: str) -> _Step:
        step = self._steps.get(name)
        if step is None:  # a step the graph does not know (another version of the flow)
            step = self._steps[name] = _Step(name)
            self._order.append(name)
        return step

    def _finished(self, ev: TaskFinished) -> list[str]:
        step = self._step(ev.step)
        at = ev.at.timestamp()
        step.active.discard(ev.pathspec)
        if step.first is None:  # a task a resume cloned has no TaskStarted
            step.first = at
        step.last = at
        lines: list[str] = []
        if ev.status in _DONE:
            step.done += 1
            if ev.status == "caught":
                lines.append(
                    printable(
                        f"task {ev.pathspec} failed after {seconds(ev.duration)}; @catch "
                        "caught it and the run goes on"
                    )
                )
        else:
            step.failed += 1
            if ev.status == "failed":
                lines.append(printable(f"task {ev.pathspec} failed after {seconds(ev.duration)}"))
        return lines + self._completed()

    def _left_open(self, step: _Step) -> bool:
        if step.reported or not (step.active or step.done or step.failed):
            return False
        step.reported = True
        return True

    # --- finished steps --------------------------------------------------------------------
    def _expected(self, name: str) -> int | None:
        """How many tasks step ``name`` runs in all, once its parents are finished."""
        step = self._steps[name]
        node = self.graph.nodes.get(name)
        if node is None:
            return None
        if not node.in_:
            return 1
        parents = [self._steps.get(p) for p in node.in_]
        if not all(p is not None and p.reported for p in parents):
            return None
        if step.total is not None or any(self.graph[p].kind is NodeKind.FOREACH for p in node.in_):
            return step.total  # the foreach's total, once a StepProgress told it
        if node.is_join and node.closes in self._steps:
            return self._steps[node.closes].done
        if len(parents) == 1 and parents[0] is not None:
            return parents[0].done
        return None

    def _completed(self) -> list[str]:
        lines: list[str] = []
        for name in self._order:
            step = self._steps[name]
            if step.reported:
                continue
            expected = self._expected(name)
            if expected is None or step.done + step.failed < expected or step.running:
                continue
            step.reported = True
            if expected or step.done + step.failed:
                lines.append(self._line(step, expected))
        return lines

    def _line(self, step: _Step, expected: int | None = None) -> str:
        total = expected if expected is not None else step.total
        if total is None or total < step.done + step.failed:
            total = step.done + step.failed
        text = f"step {step.name}: {step.done}/{total} done"
        if step.failed:
            text += f", {step.failed} failed"
        if step.running:
            text += f", {step.running} stopped"
        if step.first is not None and step.last is not None:
            text += f" in {seconds(max(0.0, step.last - step.first))}"
        return printable(text)

    # --- the live display --------------------------------------------------------------------
    def rows(self, now: float | None = None) -> list[Row]:
        """The steps started and not finished, in graph order."""
        now = time.time() if now is None else now
        out = []
        for name in self._order:
            s = self._steps[name]
            if s.reported or s.first is None:
                continue
            total = self._expected(name) if s.total is None else s.total
            out.append(Row(name, s.done, s.failed, s.running, total, max(0.0, now - s.first)))
        return out

    def header(self, now: float | None = None) -> str:
        """``Run Flow/12  3.2s`` (or ``Starting Flow``), printable."""
        now = time.time() if now is None else now
        if not self.run:
            return printable(f"Starting {self.graph.name} ...")
        done = sum(s.done for s in self._steps.values())
        return printable(f"Run {self.run}  {seconds(max(0.0, now - self.began))}  "
                         f"({done} tasks done)")  # fmt: skip


def row_text(row: Row) -> str:
    """One row of the plain live display: ``work  3/7 done, 4 running  1.2s``."""
    total = "?" if row.total is None else str(row.total)
    text = f"{row.step}  {row.done}/{total} done"
    if row.running:
        text += f", {row.running} running"
    if row.failed:
        text += f", {row.failed} failed"
    return printable(f"{text}  {seconds(row.elapsed)}")


def _topological(graph: FlowGraph) -> list[str]:
    """The steps parents first (definition order among equals); steps on a loop last."""
    indegree = {node.name: 0 for node in graph}
    for node in graph:
        for child in node.out:
            if child in indegree:
                indegree[child] += 1
    ready = [n for n, d in indegree.items() if d == 0]
    order: list[str] = []
    while ready:
        name = ready.pop(0)
        order.append(name)
        for child in graph[name].out:
            if child in indegree:
                indegree[child] -= 1
                if indegree[child] == 0:
                    ready.append(child)
    order.extend(n for n in indegree if n not in order)
    return order
