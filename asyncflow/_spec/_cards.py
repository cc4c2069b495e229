"""``@card`` and the card components (``asyncflow.cards``): Metaflow's names, as typed data.

A step's ``@card`` decorators are recorded on its :class:`StepInfo` (one :class:`CardSpec`
each); inside the step ``current.card`` collects components (``_runtime/_cards``), stored
when the task ends, in the form ``_card_form`` describes (the run report draws them).
Misuse (a bad ``type``, ``id``, ``options`` or ``timeout``, two cards with one id on a step)
is a :class:`FlowValidationError` raised while the class body runs.
"""

from __future__ import annotations

import dataclasses
import io
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from .._errors import FlowValidationError, UsageError
from ._names import is_plain_name
from ._settings import CardSpec
from ._step import STEP_ATTR, decorated_step

__all__ = ["Artifact", "Image", "Markdown", "Table", "card"]

F = TypeVar("F", bound=Callable[..., Any])


def card(
    type: Any = "default",
    id: str | None = None,
    options: Mapping[str, Any] | None = None,
    timeout: float = 45,
    **_ignored: Any,
) -> Any:
    """A card for the step: ``@card`` (or ``@card(type="default", id=None, options={},
    timeout=45)``) above ``@step``; inside the step, ``current.card.append(Markdown(...))``.

    Several cards on one step are told apart by ``id`` (``current.card["id"]``). A card's
    components are stored when the task ends, succeeded or failed (read them back with
    ``task.cards``) and drawn in the run's report. Metaflow's other arguments (``save_errors``,
    ``refresh_interval``, ``customize``) are accepted and ignored.

    :raises FlowValidationError: ``type`` is not a name, ``id`` not an identifier,
        ``options`` not a dict, ``timeout`` not a positive number, two cards with one id.
    """
    if callable(type) and not isinstance(type, str):
        return card()(type)  # written bare
    if not isinstance(type, str) or not type.strip():
        raise FlowValidationError(
            f'@card(type={type!r}): type must name a card type, such as "default".'
        )
    if id is not None and (not isinstance(id, str) or not is_plain_name(id)):
        raise FlowValidationError(
            f"@card(id={id!r}): id must be an identifier (letters, digits, _), or left out."
        )
    if options is not None and not isinstance(options, Mapping):
        raise FlowValidationError(f"@card(options={options!r}): options must be a dict.")
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not timeout > 0
        or math.isinf(timeout)
    ):
        raise FlowValidationError(
            f"@card(timeout={timeout!r}): timeout must be a positive number of seconds."
        )
    spec = CardSpec(type.strip(), id, dict(options or {}), float(timeout))

    def apply(func: F) -> F:
        info = decorated_step(func, "card")
        if any(c.id == spec.id for c in info.cards):
            which = "no id" if spec.id is None else f"id {spec.id!r}"
            raise FlowValidationError(
                f"step {info.name!r} ({info.where}) has two @card decorators with {which}; "
                'give each card of a step its own id, e.g. @card(id="scores").',
                info.name,
            )
        setattr(func, STEP_ATTR, dataclasses.replace(info, cards=(*info.cards, spec)))
        return func

    return apply


# --- components: what a card shows (asyncflow.cards) ----------------------------------------


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise UsageError(f"{what} must be a str, not {value!r}.", what)
    return value


@dataclasses.dataclass(slots=True)
class Markdown:
    """Markdown text: ``Markdown("# Scores")``."""

    text: str

    def __post_init__(self) -> None:
        _text(self.text, "Markdown(text)")

    def update(self, text: str) -> None:
        """Replace the text (Metaflow's dynamic-card call)."""
        self.text = _text(text, "Markdown.update(text)")


@dataclasses.dataclass(slots=True)
class Table:
    """A table of rows: ``Table([[0.91, 0.88]], headers=["train", "test"])``. Cells are any
    values (a cell may itself be a component)."""

    data: list[list[Any]] = dataclasses.field(default_factory=list)
    headers: list[str] | None = None
    disable_updates: bool = False  # Metaflow's argument; cards are not updated live

    def __post_init__(self) -> None:
        rows = [] if self.data is None else self.data
        if isinstance(rows, str | bytes) or not isinstance(rows, Sequence):
            raise UsageError(f"Table(data) must be a list of rows, not {rows!r}.", "Table(data)")
        self.data = [list(row) for row in rows]
        if self.headers is not None:
            self.headers = [_text(h, "Table(headers)") for h in self.headers]

    @classmethod
    def from_dataframe(cls, dataframe: Any, truncate: bool = True) -> Table:
        """A table of a pandas DataFrame: its column names as headers, its rows as rows (the
        first 100 when ``truncate``, as in Metaflow)."""
        frame = dataframe.head(100) if truncate else dataframe
        return cls(
            [list(row) for row in frame.itertuples(index=False)], [str(c) for c in frame.columns]
        )


@dataclasses.dataclass(slots=True)
class Image:
    """An image given as the bytes of a PNG, JPEG, GIF or SVG file: ``Image(png_bytes)``."""

    src: bytes
    label: str | None = None
    disable_updates: bool = False  # Metaflow's argument; cards are not updated live

    def __post_init__(self) -> None:
        if not isinstance(self.src, bytes | bytearray):
            raise UsageError(
                f"Image(src) must be the bytes of an image file, not {type(self.src).__name__}; "
                "use Image.from_matplotlib(fig) for a figure.",
                "Image(src)",
            )
        self.src = bytes(self.src)

    @classmethod
    def from_pil_image(cls, image: Any, label: str | None = None) -> Image:
        """The PNG encoding of a PIL (Pillow) image."""
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return cls(buffer.getvalue(), label)

    @classmethod
    def from_matplotlib(cls, figure: Any, label: str | None = None) -> Image:
        """The PNG rendering of a matplotlib figure."""
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        return cls(buffer.getvalue(), label)


@dataclasses.dataclass(slots=True)
class Artifact:
    """A value shown as a preview: ``Artifact(self.scores, name="scores")``."""

    artifact: Any
    name: str | None = None
    compressed: bool = True
