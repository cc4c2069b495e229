"""The stored form of a card: components as plain data, renderer-neutral (never HTML).

When a task with ``@card`` ends (succeeded or failed), each of its cards' components is
turned into one dict of plain values (:func:`stored_components`), and the card's list of them
is stored as one msgpack blob (content-addressed, so equal cards share one blob). Rendering,
and the escaping it needs, is left to whoever shows the card. The kinds, persisted forever:

``{"kind": "markdown", "text"}``
``{"kind": "table", "headers": [str], "rows": [[str]]}`` (each cell as a short preview)
``{"kind": "image", "mime", "data": bytes, "label": str | None}``
``{"kind": "artifact", "name": str | None, "preview": str}``
``{"kind": "error", "message"}``: a component that could not be stored, and why.

A component that cannot be converted never fails its step: it becomes an ``error`` component
saying what was wrong. The limits (the ``MAX_*`` constants) bound what one card may hold.
:func:`read_components` checks a stored form read back (it may come from a hostile archive)
and builds the read-only :class:`CardComponent` values the client hands out.
"""

from __future__ import annotations

import dataclasses
import reprlib
from collections.abc import Sequence
from typing import Any

from .._codecs._text import storable_text
from ._cards import Artifact, Image, Markdown, Table

__all__ = [
    "MAX_CARD_BYTES",
    "MAX_CELL_CHARS",
    "MAX_COMPONENTS",
    "MAX_IMAGE_BYTES",
    "MAX_PREVIEW_CHARS",
    "MAX_TABLE_CELLS",
    "MAX_TEXT_CHARS",
    "CardComponent",
    "read_components",
    "stored_components",
]

MAX_COMPONENTS = 1000  # per card; the rest become one error component
MAX_TEXT_CHARS = 1 << 20  # a Markdown text
MAX_TABLE_CELLS = 100_000  # rows x columns of a Table (headers aside)
MAX_CELL_CHARS = 200  # each cell's preview, cut with "..."
MAX_PREVIEW_CHARS = 2000  # an Artifact's preview, cut with "..."
MAX_IMAGE_BYTES = 8 << 20  # an Image's bytes
MAX_CARD_BYTES = 32 << 20  # the whole card (text, cells and image bytes counted)

_PNG = b"\x89PNG\r\n\x1a\n"
_KINDS = ("markdown", "table", "image", "artifact", "error")
_MIMES = ("image/png", "image/jpeg", "image/gif", "image/svg+xml")


class _Unstorable(Exception):
    """A component that cannot be stored; its message goes into an error component."""


def _cut(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 3] + "..."


class _Repr(reprlib.Repr):
    """A bounded repr (long lists and strings cut) whose failure is not hidden: reprlib
    shows an object whose ``__repr__`` raises as ``<X instance at 0x...>``; a card says why."""

    def repr_instance(self, x: Any, level: int) -> str:
        text = repr(x)
        return text if len(text) <= self.maxother else text[: self.maxother - 3] + "..."


_REPR = _Repr()
_REPR.maxstring = _REPR.maxother = MAX_PREVIEW_CHARS
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 20


def _preview(value: Any, most: int) -> str:
    """A short text of ``value``: a string as it is, anything else as its (bounded) repr."""
    if isinstance(value, str):
        return _cut(storable_text(value), most)
    if isinstance(value, Markdown):
        return _cut(storable_text(value.text), most)
    try:
        text = _REPR.repr(value)
    except Exception as exc:
        raise _Unstorable(
            f"repr() of a {type(value).__name__} raised {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(text, str):
        raise _Unstorable(f"repr() of a {type(value).__name__} is not a str")
    return _cut(storable_text(text), most)


def _mime(data: bytes) -> str | None:
    if data.startswith(_PNG):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    head = data[:1024].lstrip().lower()
    if head.startswith((b"<svg", b"<?xml")) and b"<svg" in head:
        return "image/svg+xml"
    return None


def _table(table: Table) -> dict[str, Any]:
    rows = table.data
    width = max((len(r) for r in rows), default=0)
    if len(rows) * max(width, 1) > MAX_TABLE_CELLS:
        raise _Unstorable(
            f"a Table of {len(rows)} rows x {width} columns is over the limit of "
            f"{MAX_TABLE_CELLS} cells; show a slice of it (e.g. its first rows)"
        )
    cells: list[list[str]] = []
    for r, row in enumerate(rows):
        out = []
        for c, cell in enumerate(row):
            try:
                out.append(_preview(cell, MAX_CELL_CHARS))
            except _Unstorable as exc:
                raise _Unstorable(f"Table cell [{r}][{c}]: {exc}") from exc
        cells.append(out)
    headers = [_cut(storable_text(h), MAX_CELL_CHARS) for h in table.headers or ()]
    return {"kind": "table", "headers": headers, "rows": cells}


def _one(component: Any) -> dict[str, Any]:
    if isinstance(component, Markdown):
        if not isinstance(component.text, str):
            raise _Unstorable(f"Markdown text is a {type(component.text).__name__}, not a str")
        if len(component.text) > MAX_TEXT_CHARS:
            raise _Unstorable(
                f"a Markdown text of {len(component.text)} characters is over the limit of "
                f"{MAX_TEXT_CHARS}"
            )
        return {"kind": "markdown", "text": storable_text(component.text)}
    if isinstance(component, Table):
        return _table(component)
    if isinstance(component, Image):
        data = bytes(component.src)
        if len(data) > MAX_IMAGE_BYTES:
            raise _Unstorable(
                f"an Image of {len(data)} bytes is over the limit of {MAX_IMAGE_BYTES} bytes"
            )
        mime = _mime(data)
        if mime is None:
            raise _Unstorable(
                f"Image bytes ({len(data)}, starting {data[:8]!r}) are not a PNG, JPEG, GIF or "
                "SVG file"
            )
        label = None if component.label is None else _preview(component.label, MAX_CELL_CHARS)
        return {"kind": "image", "mime": mime, "data": data, "label": label}
    if isinstance(component, Artifact):
        name = None if component.name is None else _preview(component.name, MAX_CELL_CHARS)
        preview = _preview(component.artifact, MAX_PREVIEW_CHARS)
        return {"kind": "artifact", "name": name, "preview": preview}
    raise _Unstorable(
        f"a {type(component).__name__} is not a card component; append Markdown, Table, "
        "Image or Artifact (from asyncflow.cards)"
    )


def _size(doc: dict[str, Any]) -> int:
    kind = doc["kind"]
    if kind == "table":
        return sum(len(c) for row in doc["rows"] for c in row) + 16 * len(doc["rows"])
    if kind == "image":
        return len(doc["data"])
    return sum(len(v) for v in doc.values() if isinstance(v, str))


def _error(message: str) -> dict[str, Any]:
    return {"kind": "error", "message": storable_text(message)}


def stored_components(components: Sequence[Any]) -> list[dict[str, Any]]:
    """The stored form of a card's components (see the module doc). Never raises for a bad
    component: it becomes an ``error`` component, as do those past the limits."""
    out: list[dict[str, Any]] = []
    total = 0
    for number, component in enumerate(components):
        if number == MAX_COMPONENTS:
            out.append(
                _error(
                    f"{len(components) - MAX_COMPONENTS} more components were dropped: a card "
                    f"holds at most {MAX_COMPONENTS}"
                )
            )
            break
        try:
            doc = _one(component)
            size = _size(doc)
            if total + size > MAX_CARD_BYTES:
                raise _Unstorable(
                    f"the card would pass its limit of {MAX_CARD_BYTES} bytes with this "
                    f"component ({size} bytes)"
                )
        except _Unstorable as exc:
            doc, size = _error(f"component {number} ({type(component).__name__}): {exc}"), 0
        except Exception as exc:  # anything a user's object may raise while converted
            doc, size = (
                _error(
                    f"component {number} ({type(component).__name__}) could not be stored: "
                    f"{type(exc).__name__}: {exc}"
                ),
                0,
            )
        total += size
        out.append(doc)
    return out


# --- read back ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class CardComponent:
    """One stored component of a card, read-only. ``kind`` is ``"markdown"`` (``text``),
    ``"table"`` (``headers``, ``rows`` of cell previews), ``"image"`` (``mime``, ``data``,
    ``label``), ``"artifact"`` (``name``, ``preview``) or ``"error"`` (``message``: why a
    component could not be stored). Fields of other kinds are empty (``""``, ``()``, None)."""

    kind: str
    text: str = ""
    headers: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    mime: str = ""
    data: bytes = b""
    label: str | None = None
    name: str | None = None
    preview: str = ""
    message: str = ""

    def __repr__(self) -> str:
        shown = [f"kind={self.kind!r}"]
        for field in dataclasses.fields(self)[1:]:
            value = getattr(self, field.name)
            if value not in ("", (), b"", None):
                text = f"<{len(value)} bytes>" if isinstance(value, bytes) else repr(value)
                shown.append(f"{field.name}={_cut(text, 80)}")
        return f"CardComponent({', '.join(shown)})"


def _str(doc: dict[Any, Any], key: str, optional: bool = False) -> Any:
    value = doc.get(key)
    if isinstance(value, str) or (optional and value is None):
        return value
    raise ValueError(f"{doc.get('kind')} component: {key!r} is not text")


def _strs(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"table component: {what} is not a list of text")
    return tuple(value)


def _read_one(doc: Any) -> CardComponent:
    if not isinstance(doc, dict) or doc.get("kind") not in _KINDS:
        raise ValueError("a component is not one of the kinds asyncflow stores")
    kind = doc["kind"]
    if kind == "markdown":
        return CardComponent(kind, text=_str(doc, "text"))
    if kind == "table":
        rows = doc.get("rows")
        if not isinstance(rows, list):
            raise ValueError("table component: 'rows' is not a list")
        return CardComponent(
            kind,
            headers=_strs(doc.get("headers"), "'headers'"),
            rows=tuple(_strs(row, "a row") for row in rows),
        )
    if kind == "image":
        data, mime = doc.get("data"), _str(doc, "mime")
        if not isinstance(data, bytes) or mime not in _MIMES:
            raise ValueError("image component: its data or mime type is not one asyncflow stores")
        return CardComponent(kind, mime=mime, data=data, label=_str(doc, "label", True))
    if kind == "artifact":
        return CardComponent(kind, name=_str(doc, "name", True), preview=_str(doc, "preview"))
    return CardComponent(kind, message=_str(doc, "message"))


def read_components(stored: Any) -> tuple[CardComponent, ...]:
    """The components of a stored card (a list of dicts, decoded from its blob).

    :raises ValueError: the value is not a card as asyncflow stores one (says what).
    """
    if not isinstance(stored, list):
        raise ValueError("a card is not a list of components")
    if len(stored) > MAX_COMPONENTS + 1:
        raise ValueError(f"a card holds {len(stored)} components, more than asyncflow stores")
    return tuple(_read_one(doc) for doc in stored)
