"""``inputs`` of a join step: one view per parent task, artifacts loaded in batches.

The first read of an artifact name on any input loads that name for every input at once
(one batched query for all of them), so a join over N inputs does not make N round trips.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NoReturn, overload

from .._codecs import owns_buffer
from .._errors import ArtifactNotFoundError
from .._store._blobs import RawBlob
from .._store._signing import PICKLE
from ._model import TaskOutcome
from ._untrusted import decode_loadable

if TYPE_CHECKING:
    from ._context import RunContext

__all__ = ["LOAD_WINDOW", "InputView", "Inputs"]

_SERIALISE_MSG = (
    "`inputs` (or one input) can't be stored as an artifact; store the specific values "
    "you need from it instead"
)


LOAD_WINDOW = 4096  # inputs of a join whose artifact is read in one batch
_UNREAD: Any = object()  # a column's entry for an input whose value is not read yet


class InputView:
    """The artifacts of one parent task of a join, as attributes (read-only)."""

    # Its values are in its Inputs' columns (one list per name read, at this view's index):
    # a dict per view would cost ~200 bytes per input of a 100,000-wide join. Views are made
    # as they are asked for (iteration, ``inputs[i]``), not kept; two views of the same input
    # are equal.
    __slots__ = ("_af_index", "_af_inputs", "_af_outcome")

    def __init__(self, inputs: Inputs, outcome: TaskOutcome, index: int) -> None:
        self._af_inputs = inputs
        self._af_outcome = outcome
        self._af_index = index

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        column = self._af_inputs._af_columns.get(name)
        if column is None or column[self._af_index] is _UNREAD:
            self._af_inputs._load(name, self)
            column = self._af_inputs._af_columns[name]
        return column[self._af_index]

    def __contains__(self, name: str) -> bool:
        return name in self._af_outcome.refs

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, InputView):
            return NotImplemented
        return other._af_inputs is self._af_inputs and other._af_index == self._af_index

    def __hash__(self) -> int:
        return hash((id(self._af_inputs), self._af_index))

    def __reduce__(self) -> NoReturn:
        raise TypeError(_SERIALISE_MSG)

    def __repr__(self) -> str:
        return f"<input from step {self._af_outcome.step!r}>"


class Inputs:
    """The parents of a join: ``inputs.<step>``, ``inputs[i]``, ``len()``, iteration.

    Ordered as the split's ``next()`` targets after a static split, by index after a
    foreach.
    """

    __slots__ = ("_af_columns", "_af_ctx", "_af_outcomes", "_af_prefetched", "_af_step")

    def __init__(
        self,
        ctx: RunContext,
        step: str,
        outcomes: list[TaskOutcome],
        prefetched: dict[bytes, RawBlob] | None = None,
        values: dict[tuple[int, str], Any] | None = None,
    ) -> None:
        self._af_ctx = ctx
        self._af_step = step
        self._af_outcomes = outcomes  # never changed (the join's TaskSpec.inputs)
        self._af_prefetched = prefetched or {}
        # name -> the value of each input (by index), _UNREAD where not read yet
        self._af_columns: dict[str, list[Any]] = {}
        for (index, name), value in (values or {}).items():  # decoded early (_prefetch)
            self._column(name)[index] = value

    def _column(self, name: str) -> list[Any]:
        column = self._af_columns.get(name)
        if column is None:
            column = self._af_columns[name] = [_UNREAD] * len(self._af_outcomes)
        return column

    def __len__(self) -> int:
        return len(self._af_outcomes)

    def __iter__(self) -> Iterator[InputView]:
        for index, outcome in enumerate(self._af_outcomes):
            yield InputView(self, outcome, index)

    @overload
    def __getitem__(self, index: int) -> InputView: ...
    @overload
    def __getitem__(self, index: slice) -> list[InputView]: ...
    def __getitem__(self, index: int | slice) -> InputView | list[InputView]:
        outcomes = self._af_outcomes
        if isinstance(index, slice):
            return [InputView(self, outcomes[i], i) for i in range(len(outcomes))[index]]
        outcome = outcomes[index]  # IndexError as a list's
        return InputView(self, outcome, index if index >= 0 else index + len(outcomes))

    def __getattr__(self, name: str) -> InputView:
        if name.startswith("_"):
            raise AttributeError(name)
        for index, outcome in enumerate(self._af_outcomes):
            if outcome.step == name:
                return InputView(self, outcome, index)
        steps = sorted({o.step for o in self._af_outcomes})
        raise AttributeError(
            f"inputs of join step {self._af_step!r} have no step {name!r}; use one of "
            f"{', '.join(steps)}, or inputs[i]"
        )

    def __reduce__(self) -> NoReturn:
        raise TypeError(_SERIALISE_MSG)

    def __repr__(self) -> str:
        return f"<inputs of {self._af_step!r}: {len(self)} tasks>"

    def outcomes(self) -> list[TaskOutcome]:
        """The parent tasks' outcomes, in input order."""
        return list(self._af_outcomes)

    def _load(self, name: str, asked: InputView) -> None:
        """Load ``name`` for every input that has it (one batched read)."""
        if name not in asked._af_outcome.refs:
            o = asked._af_outcome
            raise ArtifactNotFoundError(
                f"the input from step {o.step!r} (task {o.spec.task_id}) of join "
                f"{self._af_step!r} has no artifact {name!r} (it has: "
                f"{', '.join(sorted(o.refs)) or 'none'}); set self.{name} in that branch, or "
                f"read it only from inputs that have it (`{name!r} in inp`)."
            )
        column = self._column(name)
        todo = [
            i for i, o in enumerate(self._af_outcomes) if name in o.refs and column[i] is _UNREAD
        ]
        # In windows: a 100,000-wide join holds one window's fetched rows at a time, not all.
        for start in range(0, len(todo), LOAD_WINDOW):
            self._load_window(name, todo[start : start + LOAD_WINDOW], column)

    def _load_window(self, name: str, todo: list[int], column: list[Any]) -> None:
        outcomes = self._af_outcomes
        shas = [outcomes[i].refs[name] for i in todo]
        prefetched = self._af_prefetched
        raws = {s: prefetched[s] for s in shas if s in prefetched} if prefetched else {}
        missing = [s for s in dict.fromkeys(shas) if s not in raws]
        if missing:
            raws.update(self._af_ctx.store.read_raw_many(missing))
        seen: set[bytes] = set()
        ctx = self._af_ctx
        for index, sha in zip(todo, shas, strict=True):
            raw = raws[sha]
            payload = raw.payload
            if sha in seen:
                # The very bytes checked for an earlier input of this read: not hashed again.
                raw = replace(raw, vouched=True)
                if owns_buffer(payload):
                    payload = bytes(payload)  # the first decode may own the buffer
            seen.add(sha)
            source = ctx.pathspec(outcomes[index].spec) if raw.encoding == PICKLE else ""
            what = f"artifact {name!r} of its input task {source}"
            column[index] = decode_loadable(ctx, raw, self._af_step, what, name, source, payload)
