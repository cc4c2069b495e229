"""One task as its step sees it: its artifacts, its transition, what it set (see ``_context``
for what the tasks of a run share)."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from .._codecs import CodecError, Encoded, encode, is_immutable
from .._errors import (
    ArtifactNotFoundError,
    ArtifactSerializationError,
    FlowValidationError,
    MergeArtifactsError,
)
from .._spec._config import configs_of
from .._spec._flowbase import FlowBase, ForeachFrame, Switch
from .._spec._flowgraph import Node, NodeKind
from .._spec._names import artifact_name_problem
from .._spec._resolve import parameters_of
from .._store._blobs import RawBlob
from .._store._signing import PICKLE
from ._context import RunContext
from ._inputs import Inputs
from ._model import TaskOutcome, TaskSpec
from ._switch import choose_case, missing_condition
from ._untrusted import decode_loadable

__all__ = ["TaskState", "foreach_list"]


class TaskState:
    """The runtime side of one task (implements the flow's ``TaskContext``)."""

    __slots__ = (
        "base",
        "ctx",
        "decoded",
        "input_values",
        "loaded",
        "next_call",
        "next_switch",
        "param_values",
        "prefetched",
        "spec",
        "stack",
        "step",
    )

    def __init__(self, ctx: RunContext, spec: TaskSpec) -> None:
        self.ctx = ctx
        self.spec = spec
        self.step = spec.step
        self.base = spec.base  # shared with siblings: copied before any change
        self.loaded: dict[str, Any] = {}
        self.next_call: tuple[tuple[str, ...], str | None] | None = None
        self.next_switch: Switch | None = None
        self.param_values: dict[str, Any] = {}
        self.prefetched: dict[bytes, RawBlob] = {}
        # A coroutine step's values decoded before it started (_prefetch): name -> (sha,
        # value), and (input index, name) -> value for a join's inputs.
        self.decoded: dict[str, tuple[bytes, Any]] = {}
        self.input_values: dict[tuple[int, str], Any] = {}
        self.stack: tuple[ForeachFrame, ...] | None = None

    # --- TaskContext ----------------------------------------------------------------
    @property
    def foreach_stack(self) -> tuple[ForeachFrame, ...]:
        """One frame per enclosing foreach, outermost first.

        The frames' values (``self.input`` and its outer twins) are this task's own copies,
        made on first access: every task of a foreach element (its branches, its later steps,
        a nested foreach) shares one element object, and a task mutating it in place must not
        change what the others see (CONTRACT, Artifacts 5).
        """
        stack = self.stack
        if stack is None:
            stack = tuple((i, n, _own_copy(v)) for i, n, v in self.spec.stack)
            self.stack = stack
        return stack

    def _decode(self, sha: bytes, kind: str, name: str) -> Any:
        early = self.decoded.pop(name, None)
        if early is not None and early[0] == sha:
            return early[1]
        raw = self.prefetched.pop(sha, None)
        if raw is None:
            raw = self.ctx.store.read_raw(sha)
        what = f"{kind} {name!r}"
        pathspec = self.ctx.pathspec(self.spec) if raw.encoding == PICKLE else ""
        return decode_loadable(self.ctx, raw, self.step, what, name, pathspec)

    def _declared_later(self, name: str) -> str:
        had = ", ".join(self.ctx.params) or "none"
        return (
            f"run {self.ctx.run_id} of {self.ctx.flow_name} has no parameter or config "
            f"{name!r}: the flow declares it, but the run started before it did (the run's "
            f"own: {had}). A spin runs a task with its run's values; start a new run to give "
            "it one."
        )

    def load(self, name: str) -> Any:
        """Load one artifact visible to this task (a fresh copy)."""
        sha = self.base.get(name)
        if sha is None and self.ctx.spin and name in _declared(self.ctx.flow_cls):
            raise ArtifactNotFoundError(self._declared_later(name))
        if sha is None and (unmerged := self._unmerged(name)) is not None:
            raise ArtifactNotFoundError(unmerged)
        if sha is None or name in self.ctx.params:
            visible = ", ".join(sorted(n for n in self.base if n not in self.ctx.params))
            raise ArtifactNotFoundError(
                f"step {self.step!r} of {self.ctx.flow_name} has no artifact {name!r}: no "
                f"earlier step set it (visible artifacts: {visible or 'none'}). Set "
                f"self.{name} in an earlier step or check the spelling."
            )
        value = self._decode(sha, "artifact", name)
        self.loaded[name] = value
        return value

    def _unmerged(self, name: str) -> str | None:
        """Why a join has no ``name`` when its inputs have it (merge_artifacts forgotten)."""
        holders = [o for o in self.spec.inputs or () if name in o.refs]
        if not holders:
            return None
        steps = list(dict.fromkeys(o.spec.step for o in holders))
        foreach = len(steps) < len(holders)
        reads = ", ".join(f"inputs[{i}].{name}" for i in range(min(2, len(holders))))
        if not foreach:
            reads = ", ".join(f"inputs.{s}.{name}" for s in steps)
        return (
            f"join step {self.step!r} of {self.ctx.flow_name} has no artifact {name!r}: its "
            f"inputs have it ({reads}), but a join starts with only the parameters. Call "
            f"self.merge_artifacts(inputs) first to copy what the inputs agree on, or read "
            f"it as {reads.split(', ')[0]}."
        )

    def parameter(self, attr: str) -> Any:
        """A parameter's value (decoded once per task)."""
        values = self.param_values
        if attr not in values:
            sha = self.ctx.params.get(attr)
            if sha is None:  # only a spin meets it: the flow declared it after the run
                raise ArtifactNotFoundError(self._declared_later(attr))
            values[attr] = self._decode(sha, "parameter", attr)
        return values[attr]

    def record_next(
        self, targets: tuple[str, ...], foreach: str | None, switch: Switch | None = None
    ) -> None:
        """Remember the transition; a second call is an error."""
        if self.next_call is not None:
            raise FlowValidationError(
                f"step {self.step!r} of {self.ctx.flow_name} called self.next() twice; "
                "call it once, as the last statement of the step.",
                self.step,
            )
        self.next_call = (targets, foreach)
        self.next_switch = switch

    def merge_artifacts(
        self,
        flow: FlowBase,
        inputs: Any,
        include: Iterable[str] | None,
        exclude: Iterable[str] | None,
    ) -> None:
        """Merge identical (by sha) artifacts of the join's inputs into this task."""
        where = f"step {self.step!r} of {self.ctx.flow_name}"
        if self.spec.inputs is None or not isinstance(inputs, Inputs):
            raise MergeArtifactsError(
                f"{where} called merge_artifacts(), which works only in a join step "
                "(a step that takes `inputs`), passing it those inputs."
            )
        if include is not None and exclude is not None:
            raise MergeArtifactsError(
                f"{where} passed both include= and exclude= to merge_artifacts(); pass one."
            )
        params = self.ctx.params
        values: dict[str, set[bytes]] = {}
        for outcome in inputs.outcomes():
            for name, sha in outcome.refs.items():
                if name not in params:
                    values.setdefault(name, set()).add(sha)
        if include is not None:
            wanted = list(include)
            absent = sorted(n for n in wanted if n not in values)
            if absent:
                raise MergeArtifactsError(
                    f"{where} asked merge_artifacts() to include {', '.join(absent)}, which "
                    "no input has; remove them from include= or set them in the branches.",
                    tuple(absent),
                )
            values = {n: values[n] for n in wanted}
        if exclude is not None:
            for name in exclude:
                values.pop(name, None)
        already = flow.__dict__
        conflicts = sorted(n for n, shas in values.items() if len(shas) > 1 and n not in already)
        if conflicts:
            raise MergeArtifactsError(
                f"{where}: merge_artifacts() found different values in the inputs for "
                f"{', '.join(conflicts)}; set them on self before calling merge_artifacts() "
                "(e.g. self.x = max(i.x for i in inputs)), or exclude them.",
                tuple(conflicts),
            )
        merged = {n: next(iter(shas)) for n, shas in values.items() if n not in already}
        if merged:
            self.base = {**self.base, **merged}

    # --- finishing ------------------------------------------------------------------
    def collect(self, flow: FlowBase) -> tuple[dict[str, bytes], list[Encoded]]:
        """The task's complete name -> sha mapping and the blobs it created."""
        refs = dict(self.base)
        blobs: list[Encoded] = []
        loaded = self.loaded
        for name, value in flow.__dict__.items():
            if isinstance(name, str) and name[:1] == "_":
                continue
            problem = artifact_name_problem(name)
            if problem is not None:  # put in __dict__ behind __setattr__'s back
                raise ArtifactSerializationError(
                    f"cannot store an artifact named {name!r} set in step {self.step!r} of "
                    f"{self.ctx.flow_name}: {problem}; name it like a variable, as in "
                    "self.result = value",
                    str(name),
                    self.step,
                )
            old = refs.get(name)
            if old is not None and loaded.get(name, refs) is value and is_immutable(value):
                continue
            try:
                enc = encode(value)
            except CodecError as exc:
                fix = f"; {exc.fix}, or" if exc.fix else ". Store a serialisable value, or"
                raise ArtifactSerializationError(
                    f"artifact {name!r} set in step {self.step!r} of {self.ctx.flow_name} "
                    f"cannot be stored: {exc}{fix} use a name starting with '_' to keep it "
                    "out of the store.",
                    name,
                    self.step,
                ) from exc
            if enc.sha != old:
                refs[name] = enc.sha
                blobs.append(enc)
        return refs, blobs

    def finish(self, flow: FlowBase) -> tuple[TaskOutcome, list[Encoded]]:
        """Check the transition against the graph, collect artifacts, expand a foreach."""
        node = self.ctx.graph[self.step]
        call = self.next_call
        if node.kind is not NodeKind.END and call is not None and node.condition is None:
            fits = call == (node.out, node.foreach_var) and self.next_switch is None
        else:
            fits = False  # the checks below tell (the message is only made on an error)
        if not fits:
            self._check_transition(node, call)
        refs, blobs = self.collect(flow)
        items = None
        if node.kind is NodeKind.FOREACH:
            items = self._foreach_items(flow, node.foreach_var or "", self._where(node))
        # The graph's own tuple when the call fits it: one shared tuple, not one per task.
        targets = node.out if fits else call[0] if call else ()
        if node.kind is NodeKind.SWITCH:
            where = self._where(node)
            targets = (choose_case(node, self._condition(flow, node, where), where),)
        return TaskOutcome(self.spec, refs, targets, items), blobs

    def _where(self, node: Node) -> str:
        return f"step {self.step!r} of {self.ctx.flow_name} ({node.info.where})"

    def _check_transition(
        self, node: Node, call: tuple[tuple[str, ...], str | None] | None
    ) -> None:
        """Raise FlowValidationError unless the step's ``self.next`` call fits the graph."""
        where = self._where(node)
        if node.kind is NodeKind.END:
            if call is not None:
                raise FlowValidationError(
                    f"{where} called self.next(), but {self.step!r} is the last step; remove it.",
                    self.step,
                )
        elif call is None:
            raise FlowValidationError(
                f"{where} finished without calling self.next(); end the step with "
                f"self.next({', '.join('self.' + t for t in node.out)}"
                + (f", foreach={node.foreach_var!r})." if node.foreach_var else ")."),
                self.step,
            )
        elif call != (node.out, node.foreach_var) or self.next_switch != _switch_of(node):
            raise FlowValidationError(
                f"{where} called self.next({_show(call, self.next_switch)}) but its source "
                f"ends with self.next({_show((node.out, node.foreach_var), _switch_of(node))}); "
                "the call must match "
                "the graph: make the last statement the only next() call.",
                self.step,
            )

    def _condition(self, flow: FlowBase, node: Node, where: str) -> Any:
        var = node.condition or ""
        if var in flow.__dict__:
            return flow.__dict__[var]
        if var in self.base or var in self.ctx.params:
            return getattr(flow, var)
        raise missing_condition(node, where)

    def _foreach_items(self, flow: FlowBase, var: str, where: str) -> list[Any]:
        if var in flow.__dict__:
            value = flow.__dict__[var]
        elif var in self.base and var not in self.ctx.params:
            value = self.load(var)
        else:
            raise FlowValidationError(
                f"{where} has foreach={var!r}, but no artifact {var!r} exists; set "
                f"self.{var} to a list (or any iterable) before calling self.next().",
                self.step,
            )
        try:
            items = foreach_list(value)
        except TypeError as exc:
            raise FlowValidationError(
                f"{where} has foreach={var!r}, but self.{var} is a {type(value).__name__}, "
                "which is not iterable; make it a list, tuple, range or other iterable.",
                self.step,
            ) from exc
        if not items:
            raise FlowValidationError(
                f"{where} has foreach={var!r}, but self.{var} is empty; a foreach needs at "
                "least one element.",
                self.step,
            )
        return items


def foreach_list(value: Any) -> list[Any]:
    """The elements of a foreach artifact, in split order.

    A set or frozenset is split in a canonical (sorted) order: its iteration order may differ
    from one process to the next (str hashes are salted), and a resumed run, which decodes
    the set again, must give every split index the element the origin gave it.

    :raises TypeError: ``value`` is not iterable.
    """
    if not isinstance(value, set | frozenset):
        return list(value)
    kinds = set(map(type, value))
    if len(kinds) == 1 and kinds <= {int, float, str, bytes}:
        return sorted(value)
    try:
        return sorted(value, key=lambda v: encode(v).sha)
    except CodecError:
        return list(value)  # members that cannot be encoded: iteration order it is


def _own_copy(value: Any) -> Any:
    if is_immutable(value):
        return value
    try:
        return copy.deepcopy(value)
    except Exception:  # an object that cannot be copied (a lock, a socket) is shared as is
        return value


def _switch_of(node: Node) -> Switch | None:
    return None if node.condition is None else (node.condition, node.cases)


def _show(call: tuple[tuple[str, ...], str | None], switch: Switch | None = None) -> str:
    targets, foreach = call
    if switch is not None:
        cases = ", ".join(f"{value!r}: self.{step}" for value, step in switch[1])
        return f"{{{cases}}}, condition={switch[0]!r}"
    parts = [f"self.{t}" for t in targets]
    if foreach is not None:
        parts.append(f"foreach={foreach!r}")
    return ", ".join(parts)


def _declared(flow_cls: type[FlowBase]) -> set[str]:
    """The parameters and configs ``flow_cls`` declares now (a spin's code may be newer)."""
    return {*parameters_of(flow_cls), *configs_of(flow_cls)}
