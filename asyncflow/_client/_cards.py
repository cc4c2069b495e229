"""A task's stored cards, read back: ``task.cards`` (a list of :class:`Card`).

Each card is one row of the ``cards`` table naming a msgpack blob of its components (see
``_spec/_card_form``). A card's blob is read, checked against its sha (always, from an
archive), decoded with a bounded budget whatever the run's trust (it is plain data, never a
pickle) and checked to be a card as asyncflow stores one, before it becomes a :class:`Card`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from .._codecs import CodecError, decode, untrusted_budget
from .._errors import StoreError
from .._spec._card_form import CardComponent, read_components
from .._store._blobs import RawBlob

__all__ = ["Card", "CardComponent", "make_cards"]

CardRows = list[tuple[int, str | None, str, bytes]]


@dataclasses.dataclass(frozen=True, slots=True)
class Card:
    """One stored card of a task, read-only: ``card.id`` (None for a card without one),
    ``card.type``, ``card.components`` (:class:`CardComponent` values, in the order they were
    appended), ``card.index`` (its place among the step's ``@card``), ``card.hash`` (the
    content address of its components: equal cards have equal hashes). ``card[i]``, ``len``
    and iteration reach its components."""

    index: int
    id: str | None
    type: str
    components: tuple[CardComponent, ...]
    hash: str

    def __iter__(self) -> Iterator[CardComponent]:
        return iter(self.components)

    def __len__(self) -> int:
        return len(self.components)

    def __getitem__(self, index: int) -> CardComponent:
        return self.components[index]


def make_cards(rows: CardRows, raws: dict[bytes, RawBlob], pathspec: str, path: str) -> list[Card]:
    """The cards of task ``pathspec`` from its rows and their (checked) blobs.

    :raises StoreError: a card's blob is not a card as asyncflow stores one.
    """
    cards = []
    for idx, card_id, kind, sha in rows:
        raw = raws[sha]
        try:
            if raw.encoding != "msgpack":
                raise ValueError(f"its value is {raw.encoding}, not msgpack")
            stored = decode(raw.encoding, raw.meta, raw.payload, untrusted_budget(raw.size))
            components = read_components(stored)
        except (CodecError, ValueError) as exc:
            raise StoreError(
                f"cannot read card {idx} of task {pathspec} from {path!r}: {exc}; the file is "
                "damaged there (or was edited): restore it from a copy, or run the flow again.",
                path,
            ) from exc
        cards.append(Card(idx, card_id, kind, components, sha.hex()))
    return cards
