"""Card components, under Metaflow's names (``metaflow.cards``): ``Markdown``, ``Table``,
``Image``, ``Artifact``. Add them to a ``@card`` step's card with ``current.card.append``.

A task's cards are stored when it ends, succeeded or failed, as data (see the README,
"Cards"): read them back with ``task.cards`` or :func:`get_cards`; ``asyncflow report`` draws them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._client._cards import Card as Card
from ._client._cards import CardComponent as CardComponent
from ._client._task import Task
from ._errors import UsageError
from ._spec._cards import Artifact as Artifact
from ._spec._cards import Image as Image
from ._spec._cards import Markdown as Markdown
from ._spec._cards import Table as Table

if TYPE_CHECKING:
    from ._client._handle import StorePath

__all__ = [
    "Artifact",
    "Card",
    "CardComponent",
    "Image",
    "Markdown",
    "Table",
    "aget_cards",
    "get_cards",
]


def _pick(cards: list[Card], id: str | None, type: str | None) -> list[Card]:
    return [c for c in cards if (id is None or c.id == id) and (type is None or c.type == type)]


def _pathspec(task: Any) -> str:
    if isinstance(task, str):
        return task
    raise UsageError(
        f"get_cards({task!r}): pass a Task (such as run['train'].task) or a task pathspec "
        "'Flow/run/step/task'.",
        "get_cards",
    )


def get_cards(
    task: Task | str,
    id: str | None = None,
    type: str | None = None,
    follow_resumed: bool = True,
    *,
    store: StorePath = None,
) -> list[Card]:
    """The stored cards of ``task`` (a :class:`Task`, or its pathspec ``"Flow/run/step/id"``
    read from ``store``, the default store if None), as Metaflow's ``get_cards``: those with
    id ``id`` and of type ``type`` when given. A task cloned by ``resume`` holds its origin's
    cards already, so ``follow_resumed`` changes nothing.

    :raises UsageError: ``task`` is neither a Task nor a pathspec.
    :raises NotFoundError: no such task.
    :raises StoreError: a card cannot be read.
    """
    del follow_resumed
    if isinstance(task, Task):
        return _pick(task.cards, id, type)
    with Task(_pathspec(task), store) as found:
        return _pick(found.cards, id, type)


async def aget_cards(
    task: Task | str,
    id: str | None = None,
    type: str | None = None,
    follow_resumed: bool = True,
    *,
    store: StorePath = None,
) -> list[Card]:
    """The awaitable twin of :func:`get_cards`."""
    del follow_resumed
    if isinstance(task, Task):
        return _pick(await task.acards(), id, type)
    found = await Task.aopen(_pathspec(task), store)
    try:
        return _pick(await found.acards(), id, type)
    finally:
        found.close()


if not TYPE_CHECKING:  # hidden from type checkers, so a typo stays a type error

    def __getattr__(name: str) -> object:
        """Metaflow's other card names (``VegaChart``, ``ProgressBar``, ``Error``) raise
        NotSupportedError saying what to use instead."""
        from ._spec._refused import refusal

        error = refusal(f"cards.{name}")
        if error is None:
            raise AttributeError(f"module 'asyncflow.cards' has no attribute {name!r}")
        raise error
