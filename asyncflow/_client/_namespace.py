"""``namespace()``, ``get_namespace()``, ``default_namespace()``: which runs the client shows.

A namespace is a tag: ``user:alice`` (the runs alice started), ``project:movies`` (the runs of
a ``@project``), or any tag a run carries. While one is set, listings (``Flow.runs()``,
``latest_run``, ``list_flows()``, ``Metaflow().flows``) show only the runs carrying it, and
looking up a flow or a run outside it raises :class:`NamespaceMismatchError`.

asyncflow's default namespace is None (global): a store is a local file, and its runs are
yours. Metaflow's default is ``user:<you>``, because its metadata service holds everyone's
runs; ``namespace(f"user:{name}")`` gives that behaviour here.

As in Metaflow, the namespace is one module-level value for the whole process, shared by
threads and asyncio tasks alike. Each client call reads it once, when it starts, and uses that
value throughout (an awaitable read included): a call never sees half of one namespace and
half of another. The rule applied with it lives here: :func:`namespace_tags` and
:func:`check_in_namespace`.
"""

from __future__ import annotations

from collections.abc import Iterable

from .._errors import NamespaceMismatchError, UsageError

__all__ = [
    "check_in_namespace",
    "default_namespace",
    "flow_outside_namespace",
    "get_namespace",
    "namespace",
    "namespace_tags",
]

DEFAULT_NAMESPACE: str | None = None
_current: str | None = DEFAULT_NAMESPACE


def namespace(ns: str | None) -> str | None:
    """Show only runs carrying the tag ``ns`` from now on, in this whole process; None shows
    every run. Returns the namespace now in force.

    :raises UsageError: ``ns`` is neither None nor a non-empty string.
    """
    global _current
    if ns is not None:
        if not isinstance(ns, str) or not ns.strip():
            raise UsageError(
                f"namespace({ns!r}): a namespace is a tag, such as 'user:alice' or "
                "'project:movies', or None for every run.",
                "ns",
            )
        try:
            ns.encode("utf-8")
        except UnicodeEncodeError:
            raise UsageError(
                f"namespace({ns!r}): the namespace holds a lone surrogate, which no tag can "
                "hold; pass a tag such as 'user:alice', or None for every run.",
                "ns",
            ) from None
    _current = ns
    return _current


def get_namespace() -> str | None:
    """The namespace in force: a tag, or None (every run, asyncflow's default)."""
    return _current


def default_namespace() -> str | None:
    """Go back to the default namespace, None (every run), and return it."""
    return namespace(DEFAULT_NAMESPACE)


def namespace_tags(ns: str | None) -> tuple[str, ...]:
    """The tags a listing in namespace ``ns`` requires: none, or ``(ns,)``."""
    return () if ns is None else (ns,)


def check_in_namespace(ns: str | None, pathspec: str, tags: Iterable[str]) -> None:
    """Raise :class:`NamespaceMismatchError` unless run ``pathspec``, with ``tags`` (user
    and system), is in namespace ``ns``."""
    if ns is None or ns in tags:
        return
    raise NamespaceMismatchError(
        f"run {pathspec} is not in the namespace {ns!r} set with asyncflow.namespace(): it "
        f"does not carry the tag {ns!r}. Call namespace(None) to see every run, or set a "
        "namespace it carries (run.system_tags, run.tags).",
        ns,
    )


def flow_outside_namespace(ns: str, flow: str, path: str) -> NamespaceMismatchError:
    """Flow ``flow`` has runs in the store at ``path``, none of them in namespace ``ns``."""
    return NamespaceMismatchError(
        f"flow {flow!r} has no run in the namespace {ns!r} set with asyncflow.namespace() "
        f"(store {path!r}): none of its runs carries the tag {ns!r}. Call namespace(None) "
        "to see every run.",
        ns,
    )
