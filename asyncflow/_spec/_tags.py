"""Run tags: what a tag is, in one place for ``FlowSpec(tags=...)``, ``--tag`` and
``run.add_tag`` / ``run.remove_tag``; and which tags are system tags.

System tags are the ones asyncflow records itself when a run starts, as Metaflow does:
``user:<name>``, ``runtime:dev``, ``python_version:<x.y.z>``, ``date:<YYYY-MM-DD>``,
``asyncflow_version:<v>`` and, for a ``@project`` flow, ``project:<name>`` and
``project_branch:<branch>``. They live in ``run_tags`` beside the user's tags (so a
namespace such as ``user:alice`` is a plain tag filter); a tag is a system tag when its
text before the first ``:`` is one of :data:`SYSTEM_TAG_KEYS`. So that the two never mix, a
user tag may not start with one of those prefixes, and a system tag cannot be removed.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Iterable

from .._errors import UsageError
from .._version import __version__

__all__ = [
    "SYSTEM_TAG_KEYS",
    "is_system_tag",
    "normalize_tags",
    "run_system_tags",
    "system_tag_value",
]

SYSTEM_TAG_KEYS = frozenset(
    {"user", "runtime", "python_version", "date", "asyncflow_version", "project", "project_branch"}
)


def is_system_tag(tag: str) -> bool:
    """Whether ``tag`` is a system tag (``<key>:<value>`` with a key of SYSTEM_TAG_KEYS)."""
    key, colon, _ = tag.partition(":")
    return bool(colon) and key in SYSTEM_TAG_KEYS


def system_tag_value(tags: Iterable[str], key: str) -> str | None:
    """The value of the system tag ``<key>:<value>`` among ``tags``, or None."""
    prefix = f"{key}:"
    for tag in tags:
        if tag.startswith(prefix):
            return tag[len(prefix) :]
    return None


def run_system_tags(
    user: str, created_at: float, project: tuple[str, str] | None = None
) -> tuple[str, ...]:
    """The system tags of a run started by ``user`` at ``created_at`` (seconds since the
    epoch; the date is UTC's, as asyncflow shows times), of ``project`` (name, branch) if any.

    ``runtime:dev`` is what Metaflow records for a run started from a shell or a notebook;
    every asyncflow run is one. ``asyncflow_version`` is asyncflow's own version (Metaflow
    records ``metaflow_version``; no Metaflow runs here).
    """
    tags = [
        f"user:{user}",
        "runtime:dev",
        f"python_version:{platform.python_version()}",
        f"date:{time.strftime('%Y-%m-%d', time.gmtime(created_at))}",
        f"asyncflow_version:{__version__}",
    ]
    if project is not None:
        tags += [f"project:{project[0]}", f"project_branch:{project[1]}"]
    return tuple(tags)


def normalize_tags(tags: Iterable[str] | str, *, removing: bool = False) -> tuple[str, ...]:
    """``tags`` as a run records them: each as a string, once, in the order first given.

    A single string is one tag (not a sequence of one-letter tags).

    :param removing: the tags are to be removed from a run (the message says so).
    :raises UsageError: a tag holds a lone surrogate (such as ``"\\ud800"``), which is no
        character and cannot be stored as text; or it is a system tag (``user:...``,
        ``date:...``, ...), which only asyncflow sets and nobody removes.
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
        if is_system_tag(tag):
            raise _system_tag_refused(tag, removing)
    return found


def _system_tag_refused(tag: str, removing: bool) -> UsageError:
    key = tag.partition(":")[0]
    if removing:
        return UsageError(
            f"cannot remove tag {tag!r}: it is a system tag, recorded by asyncflow when the "
            "run started, and system tags cannot be removed (as in Metaflow); remove only "
            "user tags (run.user_tags).",
            "tags",
        )
    return UsageError(
        f"tag {tag!r} starts with {key + ':'!r}, which asyncflow keeps for the system tags it "
        f"records itself ({', '.join(k + ':' for k in sorted(SYSTEM_TAG_KEYS))}); choose a tag "
        f"without that prefix, such as {key + '_' + tag.partition(':')[2]!r}.",
        "tags",
    )
