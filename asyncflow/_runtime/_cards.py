"""``current.card``: the components a step adds to its cards while it runs.

Metaflow's rules for which card ``append`` reaches: the step's only card; else its only card
without an id; else none (``append`` then warns once and does nothing). ``current.card["id"]``
reaches the card with that id. In a step without ``@card`` every call warns once per task and
does nothing, as in Metaflow. Warnings go to the task's stderr, prefixed ``[@card WARNING]``.

When the step's code ends (succeeded or failed) each card's components are turned into their
stored form (:func:`card_docs`, see ``_spec/_card_form``), and the task's commit stores each
card as one blob (:func:`card_records`), in the task's own transaction. Cards are not rendered
yet.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any

from .._codecs import Encoded, encode
from .._spec._settings import CardSpec
from .._store._write_ops import CardRow

__all__ = [
    "CardCollector",
    "CardComponents",
    "CardDoc",
    "card_docs",
    "card_records",
    "card_var",
]

CardDoc = tuple[int, str | None, str, list[dict[str, Any]]]
"""A card in its stored form: (index among the step's cards, id, type, components)."""


class CardComponents:
    """The components of one card: ``append``, ``extend``, ``clear``, iteration, ``len``."""

    __slots__ = ("_items", "spec")

    def __init__(self, spec: CardSpec) -> None:
        self.spec = spec
        self._items: list[Any] = []

    def append(self, component: Any) -> None:
        """Add a component to the card."""
        self._items.append(component)

    def extend(self, components: Iterable[Any]) -> None:
        """Add several components to the card."""
        self._items.extend(components)

    def clear(self) -> None:
        """Remove every component."""
        self._items.clear()

    def refresh(self, *args: Any, **kwargs: Any) -> None:
        """Metaflow redraws a live card here; asyncflow stores a card once, when its task
        ends: does nothing."""

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"<card {self.spec.id or self.spec.type}: {len(self._items)} components>"


class CardCollector:
    """``current.card`` of one task (see the module doc)."""

    __slots__ = ("_by_id", "_cards", "_default", "_step", "_warned")

    def __init__(self, step: str | None, specs: tuple[CardSpec, ...]) -> None:
        self._step = step
        self._cards = [CardComponents(spec) for spec in specs]
        self._by_id = {c.spec.id: c for c in self._cards if c.spec.id is not None}
        no_id = [c for c in self._cards if c.spec.id is None]
        self._default = (
            self._cards[0] if len(self._cards) == 1 else no_id[0] if len(no_id) == 1 else None
        )
        self._warned: set[str] = set()

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            print(f"[@card WARNING] {message}", file=sys.stderr)

    def _target(self, call: str) -> CardComponents | None:
        if self._default is None:
            if not self._cards:
                where = f"step {self._step!r}" if self._step else "code outside a step"
                why = f"{where} has no @card"
                fix = "put @card above @step"
            else:
                why = "the step has several @card decorators with ids"
                fix = 'use current.card["id"] instead'
            self._warn(call, f"current.card.{call}: {why}, so nothing is added; {fix}.")
        return self._default

    def append(self, component: Any) -> None:
        """Add a component to the step's default card."""
        target = self._target("append")
        if target is not None:
            target.append(component)

    def extend(self, components: Iterable[Any]) -> None:
        """Add several components to the step's default card."""
        target = self._target("extend")
        if target is not None:
            target.extend(components)

    def clear(self) -> None:
        """Remove every component of the default card."""
        target = self._target("clear")
        if target is not None:
            target.clear()

    def refresh(self, *args: Any, **kwargs: Any) -> None:
        """Metaflow redraws a live card here; asyncflow stores a card once, when its task
        ends: does nothing."""

    def get(self, type: str | None = None) -> list[CardComponents]:
        """The cards of the step of type ``type`` (Metaflow's ``current.card.get``)."""
        return [c for c in self._cards if c.spec.type == type]

    def __getitem__(self, card_id: str) -> CardComponents | list[Any]:
        found = self._by_id.get(card_id)
        if found is None:
            self._warn(
                f"[{card_id}]",
                f'current.card["{card_id}"]: the step has no @card(id="{card_id}"); the '
                "components added to it are dropped.",
            )
            return []
        return found

    def __setitem__(self, card_id: str, components: Iterable[Any]) -> None:
        found = self.__getitem__(card_id)
        if isinstance(found, CardComponents):
            found.clear()
            found.extend(components)

    def __iter__(self) -> Iterator[CardComponents]:
        return iter(self._cards)

    def __repr__(self) -> str:
        return f"<current.card: {len(self._cards)} cards>"


card_var: ContextVar[CardCollector | None] = ContextVar("asyncflow_card", default=None)


def _stored(components: list[Any]) -> list[dict[str, Any]]:
    """``stored_components``, imported by the first card (a run without ``@card`` never
    imports the card forms)."""
    from .._spec._card_form import stored_components

    return stored_components(components)


def card_docs(collector: CardCollector) -> list[CardDoc]:
    """The stored form of every card of a task (none for a step without ``@card``). Never
    raises: a component that cannot be converted is an error component of its card."""
    return [
        (idx, card.spec.id, card.spec.type, _stored(list(card)))
        for idx, card in enumerate(collector)
    ]


def card_records(docs: list[CardDoc] | None) -> tuple[list[CardRow], list[Encoded]]:
    """The card rows of a task's commit and their blobs (one msgpack blob per card: equal
    cards share one). The components hold plain data only, so msgpack always takes them."""
    rows: list[CardRow] = []
    blobs: list[Encoded] = []
    for idx, card_id, kind, components in docs or ():
        enc = encode(components)
        if enc.encoding != "msgpack":  # cannot happen (plain data only); never a pickle
            enc = encode([{"kind": "error", "message": "the card could not be stored"}])
        rows.append((idx, card_id, kind, enc.sha))
        blobs.append(enc)
    return rows, blobs
