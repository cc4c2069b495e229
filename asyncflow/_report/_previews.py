"""Short previews of values for the run report: plain JSON-able dicts (the model's PREVIEW).

``{"kind": "text", "text"}``: a string (cut), or any other value's bounded repr;
``{"kind": "array", "shape", "dtype", "min", "max", "slice"}``: a numpy array or scalar;
``{"kind": "table", "headers", "rows", "total_rows"}``: a pandas DataFrame or Series;
``{"kind": "unavailable", "text"}``: why there is no preview (the value may not be loaded,
could not be read, or its repr raised).

Every cut says so in the text, with how much was left out. Nothing here imports numpy or
pandas: a value is recognised by its type's module and name, so previewing costs no import.
"""

from __future__ import annotations

import reprlib
from typing import Any

__all__ = [
    "CELL_CHARS",
    "TABLE_COLUMNS",
    "TABLE_ROWS",
    "TEXT_CHARS",
    "cut_text",
    "describe",
    "preview",
    "unavailable",
]

TEXT_CHARS = 1000  # a preview's text
TABLE_ROWS = 10  # rows of a DataFrame shown (its head)
TABLE_COLUMNS = 20  # columns of a DataFrame shown
CELL_CHARS = 100  # each cell of a DataFrame shown
_ITEMS = 20  # items of a list, dict or set shown
_EDGE = 3  # items at each edge of an array's axis shown in its slice


def cut_text(text: str, most: int, unit: str = "characters") -> str:
    """``text`` if it has at most ``most`` characters, else its start and a note of how many
    characters were cut."""
    if len(text) <= most:
        return text
    return f"{text[:most]}… [{len(text) - most:,} more {unit} not shown]"


def unavailable(text: str) -> dict[str, Any]:
    """The preview of a value that could not be shown, saying why."""
    return {"kind": "unavailable", "text": cut_text(text, 4 * TEXT_CHARS)}


class _Repr(reprlib.Repr):
    """A bounded repr whose objects' own reprs are cut too (reprlib's ``repr_instance``
    would show an object whose ``__repr__`` raises as ``<X instance at 0x...>``)."""

    def repr_instance(self, x: Any, level: int) -> str:
        text = repr(x)
        return text if len(text) <= self.maxother else text[: self.maxother - 1] + "…"


def _repr() -> _Repr:
    shown = _Repr()
    shown.maxstring = shown.maxother = 200
    shown.maxlist = shown.maxtuple = shown.maxdict = shown.maxset = shown.maxfrozenset = _ITEMS
    shown.maxdeque = shown.maxarray = _ITEMS
    shown.maxlevel = 4
    return shown


def _type_name(value: Any) -> str:
    kind = type(value)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def _container(value: Any) -> str:
    text = _repr().repr(value)
    note = ""
    if len(value) > _ITEMS:
        note = f" [{type(value).__name__} of {len(value):,} items; the first {_ITEMS} shown]"
    return cut_text(text, TEXT_CHARS) + note


def _is(value: Any, module: str, *names: str) -> bool:
    kind = type(value)
    return kind.__module__.split(".")[0] == module and kind.__name__ in names


def _array(value: Any) -> dict[str, Any]:
    import numpy as np  # numpy is already loaded: the value is one of its types

    array = np.asarray(value)
    low = high = ""
    if array.size and array.dtype.kind in "biuf":
        try:
            with np.errstate(all="ignore"):
                if array.dtype.kind == "f" and np.isnan(array).any():
                    # NaN is not the least nor the greatest: the extremes of the rest, and
                    # how many NaN there are (a preview that said "nan" hid them)
                    nans = int(np.isnan(array).sum())
                    if nans < array.size:
                        low, high = str(np.nanmin(array)), str(np.nanmax(array))
                    low = f"{low} ({nans:,} NaN)".lstrip()
                    high = f"{high} ({nans:,} NaN)".lstrip()
                else:
                    low, high = str(array.min()), str(array.max())
        except (TypeError, ValueError):  # e.g. a structured dtype: no order
            low = high = ""
    if array.ndim:
        corner = array[tuple(slice(0, 2 * _EDGE + 1) for _ in range(array.ndim))]
    else:
        corner = array
    text = np.array2string(corner, threshold=50, edgeitems=_EDGE, max_line_width=100)
    if corner.size < array.size:
        text += f"\n[the first {corner.size:,} of {array.size:,} elements]"
    return {
        "kind": "array",
        "shape": [int(n) for n in array.shape],
        "dtype": str(array.dtype),
        "min": low,
        "max": high,
        "slice": cut_text(text, TEXT_CHARS),
    }


def _cell(value: Any) -> str:
    try:
        text = value if isinstance(value, str) else _repr().repr(value)
    except Exception as exc:  # a cell whose repr raises: say so in the cell
        text = f"<repr raised {type(exc).__name__}>"
    return cut_text(text, CELL_CHARS)


def _table(value: Any) -> dict[str, Any]:
    frame = value.to_frame() if _is(value, "pandas", "Series") else value
    head = frame.iloc[:TABLE_ROWS, :TABLE_COLUMNS]
    headers = [_cell(frame.index.name or ""), *(_cell(c) for c in head.columns)]
    rows = [
        [_cell(index), *(_cell(cell) for cell in row)]
        for index, row in zip(head.index, head.itertuples(index=False, name=None), strict=True)
    ]
    out: dict[str, Any] = {
        "kind": "table",
        "headers": headers,
        "rows": rows,
        "total_rows": len(frame),
    }
    if frame.shape[1] > TABLE_COLUMNS:
        out["total_columns"] = int(frame.shape[1])
    return out


def preview(value: Any) -> dict[str, Any]:
    """A short preview of ``value`` (see the module doc). Never raises: a value whose repr
    (or whose table) fails gives an ``unavailable`` preview saying why."""
    try:
        if isinstance(value, str):
            return {"kind": "text", "text": cut_text(value, TEXT_CHARS)}
        if _is(value, "numpy", "ndarray") or (
            type(value).__module__ == "numpy" and hasattr(value, "dtype")
        ):
            return _array(value)
        if _is(value, "pandas", "DataFrame", "Series"):
            return _table(value)
        if isinstance(value, list | tuple | dict | set | frozenset):
            return {"kind": "text", "text": _container(value)}
        if isinstance(value, bytes | bytearray):
            note = f" [{len(value):,} bytes]" if len(value) > 200 else ""
            return {"kind": "text", "text": _repr().repr(bytes(value[:201])) + note}
        if type(value) is int and value.bit_length() > 10_000:
            # past Python's digit limit for str(): its size and its first hex digits
            return {"kind": "text", "text": f"an int of {value.bit_length():,} bits, "
                    f"{cut_text(hex(value), TEXT_CHARS)}"}  # fmt: skip
        return {"kind": "text", "text": cut_text(repr(value), TEXT_CHARS)}
    except Exception as exc:
        return unavailable(
            f"no preview of this {_type_name(value)}: its repr raised {describe(exc)}"
        )


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception, cut; its own ``str()`` may raise too."""
    try:
        message = cut_text(str(exc), 300)
    except Exception:
        message = "(its message cannot be shown)"
    return f"{type(exc).__name__}: {message}"
