"""What a name in a flow may be, in one place: steps, parameters and artifacts all follow it.

A name is a Python identifier (not a keyword), so that it reads as ``self.<name>``; a name
starting with ``_`` is private (never a step, a parameter or a stored artifact); and the
names of :data:`RESERVED_NAMES` belong to every flow. Command-line words such as ``check``
or ``show`` are not attributes of a flow, so steps and parameters may take them.
"""

from __future__ import annotations

import keyword

__all__ = ["COMMAND_LINE_NAMES", "RESERVED_NAMES", "artifact_name_problem", "is_plain_name"]

RESERVED_NAMES: frozenset[str] = frozenset(
    {
        # what ``self`` offers inside a step (FlowBase) ...
        "next",
        "input",
        "index",
        "name",
        "merge_artifacts",
        "foreach_stack",
        # ... and what a flow class offers (FlowSpec)
        "run",
        "resume",
        "stream",
        "spin",
        "main",
    }
)
"""The public attributes of every flow (``FlowSpec``'s own): no step or parameter may take
one. ``tests/test_validation.py`` checks that this is exactly the set of FlowSpec's public
attributes."""


COMMAND_LINE_NAMES: frozenset[str] = frozenset({"help", "store", "tag", "quiet", "executor"})
"""Options of ``python flow.py run`` that are identifiers: no parameter may take one, since
its ``--<name>`` option would clash with them. (``--max-workers``, ``--worker-processes``,
``--dask-address`` and ``--origin-run-id`` are not identifiers, so no parameter name can clash
with them.)"""


def is_plain_name(text: object) -> bool:
    """Whether ``text`` is a str that is an identifier and not a Python keyword."""
    return isinstance(text, str) and text.isidentifier() and not keyword.iskeyword(text)


def artifact_name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a stored artifact, or None when it can.

    Names starting with ``_`` are fine here: they are kept on the instance and not stored.
    """
    if not isinstance(name, str):
        return f"an artifact name is a str, not {type(name).__name__}"
    if name.startswith("_"):
        return None
    if not name:
        return "an artifact name cannot be empty"
    if not is_plain_name(name):
        return "an artifact name must be a Python identifier (letters, digits, '_'; no keyword)"
    return None
