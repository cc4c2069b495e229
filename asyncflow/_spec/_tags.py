"""Run tags: what a tag is, in one place for ``FlowSpec(tags=...)``, ``--tag`` and
``run.add_tag`` / ``run.remove_tag``."""

from __future__ import annotations

from collections.abc import Iterable

from .._errors import UsageError

__all__ = ["normalize_tags"]


def normalize_tags(tags: Iterable[str] | str) -> tuple[str, ...]:
    """``tags`` as a run records them: each as a string, once, in the order first given.

    A single string is one tag (not a sequence of one-letter tags).

    :raises UsageError: a tag holds a lone surrogate (such as ``"\\ud800"``), which is no
        character and cannot be stored as text.
    """
    if isinstance(tags, str):
        tags = (tags,)
    found = tuple(dict.fromkeys(str(t) for t in tags))
    for tag in found:
        try:
            tag.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise UsageError(
                f"tag {tag!r} holds a lone surrogate ({tag[exc.start]!r} at position "
                f"{exc.start}), which is not a character and cannot be stored; remove it "
                "from the tag (a str read with errors='surrogateescape' may hold one).",
                "tags",
            ) from None
    return found
