"""``--with NAME[:k=v,...]``: a decorator added to every step of one run.

As in Metaflow, the decorator goes on every step that does not have it already (a step's own
``@retry(times=5)`` wins over ``--with retry``); ``--with catch`` leaves out foreach splits
and switches, which cannot go on once they failed (``check`` refuses ``@catch`` written on
them). The user's class is never touched: the run
gets a graph of its own (:func:`decorate_graph`) whose steps carry the added decorators, made
by the decorators themselves (so ``--with`` checks exactly what writing them would).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from .._errors import FlowValidationError
from ._decorators import catch, executor, retry, timeout
from ._flowgraph import FlowGraph, Node, NodeKind
from ._placement import batch, environment, kubernetes, resources
from ._step import STEP_ATTR, StepInfo

__all__ = ["STEP_DECORATORS", "DecoSpec", "apply_config_exprs", "decorate_graph", "has_pending"]

#: What ``--with`` may add: the decorator, and the StepInfo field that shows a step has it.
STEP_DECORATORS: dict[str, tuple[Callable[..., Any], str]] = {
    "retry": (retry, "retry"),
    "catch": (catch, "catch"),
    "timeout": (timeout, "timeout"),
    "resources": (resources, "resources"),
    "environment": (environment, "environment"),
    "kubernetes": (kubernetes, "compute"),
    "batch": (batch, "compute"),
    "executor": (executor, "executor"),
}


@dataclasses.dataclass(frozen=True, slots=True)
class DecoSpec:
    """One ``--with``: the decorator's name, its arguments, and the text as given."""

    name: str
    kwargs: Mapping[str, Any]
    text: str


def _skips(node: Node, spec: DecoSpec) -> bool:
    """Whether ``--with`` leaves ``node`` out: a failed foreach split has no list to fan
    out over, a failed switch no condition to choose its case by, so neither is caught."""
    return spec.name == "catch" and node.kind in (NodeKind.FOREACH, NodeKind.SWITCH)


def _has(info: StepInfo, spec: DecoSpec) -> bool:
    if any(p.name == spec.name for p in info.pending):  # its own, with config_expr arguments
        return True
    _, field = STEP_DECORATORS[spec.name]
    current = getattr(info, field)
    if field == "compute":  # the other layer is not "this one": both is refused, as written
        return current is not None and current.name == spec.name
    return current is not None


def _decorated(info: StepInfo, spec: DecoSpec) -> StepInfo:
    return _carried(info, spec)


def _carried(info: StepInfo, spec: DecoSpec) -> StepInfo:
    deco, _ = STEP_DECORATORS[spec.name]
    if spec.name not in ("kubernetes", "batch"):  # these take any argument
        try:
            inspect.signature(deco).bind(**spec.kwargs)
        except TypeError as exc:
            takes = ", ".join(inspect.signature(deco).parameters)
            raise FlowValidationError(
                f"--with {spec.text}: @{spec.name} takes {takes} ({exc}); write --with "
                f"{spec.name}:key=value,key=value with those names."
            ) from None

    # A stand-in carries a copy of the step's info through the real decorator.
    def carrier() -> None: ...

    setattr(carrier, STEP_ATTR, info)
    deco(**spec.kwargs)(carrier)
    made = getattr(carrier, STEP_ATTR)
    assert isinstance(made, StepInfo)
    return made


def decorate_graph(graph: FlowGraph, specs: tuple[DecoSpec, ...]) -> FlowGraph:
    """``graph`` with each ``--with`` decorator added to every step that lacks it.

    :raises FlowValidationError: an argument the decorator does not take or refuses, or a
        combination it refuses (``@environment`` on a coroutine step, say), naming the step.
    """
    if not specs:
        return graph
    nodes: dict[str, Node] = {}
    for node in graph:
        info = node.info
        for spec in specs:
            if not _has(info, spec) and not _skips(node, spec):
                try:
                    info = _decorated(info, spec)
                except FlowValidationError as exc:
                    if str(exc).startswith("--with"):
                        raise
                    raise FlowValidationError(f"--with {spec.text}: {exc}", info.name) from None
        nodes[node.name] = node if info is node.info else dataclasses.replace(node, info=info)
    return FlowGraph(name=graph.name, doc=graph.doc, nodes=MappingProxyType(nodes))


def has_pending(graph: FlowGraph) -> bool:
    """Whether a step of ``graph`` has a decorator with config_expr arguments."""
    return any(node.info.pending for node in graph)


def apply_config_exprs(graph: FlowGraph, configs: Mapping[str, Any]) -> FlowGraph:
    """``graph`` with each step's pending decorators (config_expr arguments) applied, their
    expressions evaluated against ``configs`` (config name -> ConfigValue).

    :raises ParameterError: an expression failed (a key the config lacks).
    :raises FlowValidationError: the decorator refuses the value the config gave, naming the
        step and the decorator as written.
    """
    if not has_pending(graph):
        return graph
    nodes: dict[str, Node] = {}
    for node in graph:
        info = node.info
        if info.pending:
            pending, info = info.pending, dataclasses.replace(info, pending=())
            for deco in pending:
                kwargs = deco.resolved(configs)
                try:
                    info = _carried(info, DecoSpec(deco.name, kwargs, deco.text))
                except FlowValidationError as exc:
                    exprs = deco.from_configs()
                    given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items() if k in exprs)
                    raise FlowValidationError(
                        f"step {info.name!r} ({info.where}): {deco.text} gave "
                        f"@{deco.name}({given}) with this run's configs: {exc}",
                        info.name,
                    ) from None
        nodes[node.name] = node if info is node.info else dataclasses.replace(node, info=info)
    return dataclasses.replace(graph, nodes=MappingProxyType(nodes))
