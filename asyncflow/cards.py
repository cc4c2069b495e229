"""Card components, under Metaflow's names (``metaflow.cards``): ``Markdown``, ``Table``,
``Image``, ``Artifact``. Add them to a ``@card`` step's card with ``current.card.append``.

Cards are collected while a step runs but not yet stored or rendered.
"""

from ._spec._cards import Artifact as Artifact
from ._spec._cards import Image as Image
from ._spec._cards import Markdown as Markdown
from ._spec._cards import Table as Table

__all__ = ["Artifact", "Image", "Markdown", "Table"]
