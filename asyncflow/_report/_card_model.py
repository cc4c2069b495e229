"""A stored card as the report model holds it: its components' stored forms as plain data.

``{"kind": "markdown", "text"}``, ``{"kind": "table", "headers", "rows", "total_rows"}``,
``{"kind": "image", "mime", "data" (base64 text), "label"}``, ``{"kind": "artifact", "name",
"preview" (text)}``, ``{"kind": "error", "message"}``. The text is the card's own, never
marked up. A report holds at most :data:`IMAGE_BYTES` of images in all, and cuts long
markdown and tables (:data:`TEXT_CHARS`, :data:`TABLE_ROWS`); what is left out becomes an
``error`` component saying so.
"""

from __future__ import annotations

import base64
from typing import Any

from .._client._cards import Card, CardComponent
from ._previews import cut_text

__all__ = ["IMAGE_BYTES", "TABLE_ROWS", "TEXT_CHARS", "CardBudget", "card_error", "card_model"]

IMAGE_BYTES = 16 << 20  # bytes of card images one report holds, over all its cards
TEXT_CHARS = 100_000  # characters of one markdown component
TABLE_ROWS = 200  # rows of one table component


class CardBudget:
    """What is left of a report's room for card images."""

    def __init__(self) -> None:
        self.image_bytes = IMAGE_BYTES


def _component(part: CardComponent, budget: CardBudget) -> dict[str, Any]:
    if part.kind == "markdown":
        return {"kind": "markdown", "text": cut_text(part.text, TEXT_CHARS)}
    if part.kind == "table":
        return {
            "kind": "table",
            "headers": list(part.headers),
            "rows": [list(row) for row in part.rows[:TABLE_ROWS]],
            "total_rows": len(part.rows),
        }
    if part.kind == "image":
        if len(part.data) > budget.image_bytes:
            label = f" {part.label!r}" if part.label else ""
            return card_error(
                f"image{label} ({len(part.data):,} bytes of {part.mime}) left out: a report "
                f"holds at most {IMAGE_BYTES >> 20} MiB of card images; read it with "
                "task.cards in Python"
            )
        budget.image_bytes -= len(part.data)
        return {
            "kind": "image",
            "mime": part.mime,
            "data": base64.b64encode(part.data).decode("ascii"),
            "label": part.label,
        }
    if part.kind == "artifact":
        return {"kind": "artifact", "name": part.name, "preview": part.preview}
    return card_error(part.message)


def card_error(message: str) -> dict[str, Any]:
    """An ``error`` component: what could not be shown, and why."""
    return {"kind": "error", "message": message}


def card_model(card: Card, budget: CardBudget) -> dict[str, Any]:
    """``{"id", "type", "components"}`` of a stored card."""
    return {
        "id": card.id,
        "type": card.type,
        "components": [_component(part, budget) for part in card.components],
    }
