"""Which steps are a flow's first and last: the rule, in one place.

A step marked ``@step(start=True)`` (``end=True``) is the first (last) step, whatever its name
(Metaflow 2.19); a flow that marks none starts at the step named ``start`` and ends at the step
named ``end``, as every Metaflow flow did before. :class:`._flowgraph.FlowGraph` exposes the answer
as ``start_step`` / ``end_step``, and the runtime, the client, ``show`` and the validation all
ask it there; :mod:`._validate` refuses flows where the answer is not one step each.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ._step import StepInfo

__all__ = ["DEFAULT_END", "DEFAULT_START", "stored_end_step", "terminal_steps"]

#: The names of the first and last steps of a flow that marks none with @step(start=True) or
#: @step(end=True): Metaflow's rule before 2.19, still the rule for unmarked flows.
DEFAULT_START, DEFAULT_END = "start", "end"


class _HasStep(Protocol):
    # What terminal_steps reads of a graph's node (a ``_flowgraph.Node``); a protocol, so that
    # this module need not import the graph's types, which use it.
    @property
    def info(self) -> StepInfo: ...


def terminal_steps(nodes: Mapping[str, _HasStep]) -> tuple[str, str]:
    """The names of the flow's first and last steps: the step marked ``@step(start=True)``
    (``end=True``) if there is one, else the step named ``start`` (``end``).

    Every other part of asyncflow asks a graph's ``start_step`` and ``end_step``. When
    several steps are marked, the first is taken here and :mod:`._validate` refuses the
    flow.
    """
    start = next((n for n, node in nodes.items() if node.info.marked_start), DEFAULT_START)
    end = next((n for n, node in nodes.items() if node.info.marked_end), DEFAULT_END)
    return start, end


def stored_end_step(graph: object) -> str:
    """The last step of a graph as stored with a run (:meth:`FlowGraph.to_json`); runs stored
    before custom last steps existed end at ``end``."""
    name = graph.get("end_step") if isinstance(graph, dict) else None
    return name if isinstance(name, str) else DEFAULT_END
