"""Text as it can be stored: the one rule for strings that UTF-8 cannot encode."""

from __future__ import annotations

__all__ = ["storable_text"]


def storable_text(text: str) -> str:
    """``text`` as msgpack and SQLite can hold it: lone surrogates (which UTF-8 cannot
    encode) written as their escapes, ``\\ud800``; any other text unchanged."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text
