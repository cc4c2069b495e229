"""``inputs`` of a join step: one view per parent task, artifacts loaded in batches.

The first read of an artifact name on any input loads that name for every input at once
(one batched query for all of them), so a join over N inputs does not make N round trips.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NoReturn

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
    # a dict per view would cost ~200 bytes per input of a 100,000-wide join.
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

    def __reduce__(self) -> NoReturn:
        raise TypeError(_SERIALISE_MSG)

    def __repr__(self) -> str:
        return f"<input from step {self._af_outcome.step!r}>"


class Inputs:
    """The parents of a join: ``inputs.<step>``, ``inputs[i]``, ``len()``, iteration.

    Ordered as the split's ``next()`` targets after a static split, by index after a
    foreach.
    """

    __slots__ = ("_af_columns", "_af_ctx", "_af_prefetched", "_af_step", "_af_views")

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
        self._af_views = [InputView(self, o, i) for i, o in enumerate(outcomes)]
        self._af_prefetched = prefetched or {}
        # name -> the value of each input (by index), _UNREAD where not read yet
        self._af_columns: dict[str, list[Any]] = {}
        for (index, name), value in (values or {}).items():  # decoded early (_prefetch)
            self._column(name)[index] = value

    def _column(self, name: str) -> list[Any]:
        column = self._af_columns.get(name)
        if column is None:
            column = self._af_columns[name] = [_UNREAD] * len(self._af_views)
        return column

    def __len__(self) -> int:
        return len(self._af_views)

    def __iter__(self) -> Iterator[InputView]:
        return iter(self._af_views)

    def __getitem__(self, index: int) -> InputView:
        return self._af_views[index]

    def __getattr__(self, name: str) -> InputView:
        if name.startswith("_"):
            raise AttributeError(name)
        for view in self._af_views:
            if view._af_outcome.step == name:
                return view
        steps = sorted({v._af_outcome.step for v in self._af_views})
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
        return [v._af_outcome for v in self._af_views]

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
            v
            for v in self._af_views
            if name in v._af_outcome.refs and column[v._af_index] is _UNREAD
        ]
        # In windows: a 100,000-wide join holds one window's fetched rows at a time, not all.
        for start in range(0, len(todo), LOAD_WINDOW):
            self._load_window(name, todo[start : start + LOAD_WINDOW], column)

    def _load_window(self, name: str, todo: list[InputView], column: list[Any]) -> None:
        shas = [v._af_outcome.refs[name] for v in todo]
        prefetched = self._af_prefetched
        raws = {s: prefetched[s] for s in shas if s in prefetched} if prefetched else {}
        missing = [s for s in dict.fromkeys(shas) if s not in raws]
        if missing:
            raws.update(self._af_ctx.store.read_raw_many(missing))
        seen: set[bytes] = set()
        ctx = self._af_ctx
        for view, sha in zip(todo, shas, strict=True):
            raw = raws[sha]
            payload = raw.payload
            if sha in seen:
                # The very bytes checked for an earlier input of this read: not hashed again.
                raw = replace(raw, vouched=True)
                if owns_buffer(payload):
                    payload = bytes(payload)  # the first decode may own the buffer
            seen.add(sha)
            source = ctx.pathspec(view._af_outcome.spec) if raw.encoding == PICKLE else ""
            what = f"artifact {name!r} of its input task {source}"
            column[view._af_index] = decode_loadable(
                ctx, raw, self._af_step, what, name, source, payload
            )
