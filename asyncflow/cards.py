"""Card components, under Metaflow's names (``metaflow.cards``): ``Markdown``, ``Table``,
``Image``, ``Artifact``. Add them to a ``@card`` step's card with ``current.card.append``.

Cards are collected while a step runs but not yet stored or rendered.
"""

from typing import TYPE_CHECKING

from ._spec._cards import Artifact as Artifact
from ._spec._cards import Image as Image
from ._spec._cards import Markdown as Markdown
from ._spec._cards import Table as Table

__all__ = ["Artifact", "Image", "Markdown", "Table"]

if not TYPE_CHECKING:  # hidden from type checkers, so a typo stays a type error

    def __getattr__(name: str) -> object:
        """Metaflow's other card names (``VegaChart``, ``ProgressBar``, ``get_cards``) raise
        NotSupportedError saying what to use until issue 14 builds them."""
        from ._spec._refused import refusal

        error = refusal(f"cards.{name}")
        if error is None:
            raise AttributeError(f"module 'asyncflow.cards' has no attribute {name!r}")
        raise error
