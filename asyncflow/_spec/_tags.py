"""Run tags: what a tag is, in one place for ``FlowSpec(tags=...)``, ``--tag`` and
``run.add_tag`` / ``run.remove_tag``."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["normalize_tags"]


def normalize_tags(tags: Iterable[str] | str) -> tuple[str, ...]:
    """``tags`` as a run records them: each as a string, once, in the order first given.

    A single string is one tag (not a sequence of one-letter tags).
    """
    if isinstance(tags, str):
        tags = (tags,)
    return tuple(dict.fromkeys(str(t) for t in tags))
