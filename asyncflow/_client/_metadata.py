"""``get_metadata()``, ``metadata(spec)``, ``default_metadata()``: which store, in Metaflow's
words.

Metaflow's "metadata" names where runs are recorded (``local@/path/.metaflow`` or a metadata
service). asyncflow's runs are recorded in one store file, so these name the store:
``get_metadata()`` returns ``"local@/abs/path/asyncflow.db"``, ``metadata(path)`` makes that
store the default of this process (for the client and for runs started without ``store=``,
so that a run and a later read agree), ``default_metadata()`` goes back to the default.
Inside a running step the run's own store stays the default, whatever was chosen.
"""

from __future__ import annotations

import os

from .._errors import UsageError
from .._store._paths import resolve_store_path, set_default_store

__all__ = ["default_metadata", "get_metadata", "metadata"]


def get_metadata() -> str:
    """The default store, as Metaflow names its metadata: ``"local@<absolute path>"``."""
    return "local@" + os.path.abspath(resolve_store_path(None))


def metadata(ms: str | os.PathLike[str]) -> str:
    """Make the store file ``ms`` the default store of this process; return
    :func:`get_metadata`. ``ms`` is a path, or ``"local@<path>"`` as Metaflow writes it.

    :raises UsageError: ``ms`` names a metadata service (``service@…``, an ``http(s)://``
        URL): asyncflow records runs in a store file only.
    """
    text = os.fspath(resolve_store_path(ms))
    kind, sep, rest = text.partition("@")
    if sep and kind == "local":
        text = rest
    elif (sep and kind == "service") or text.startswith(("http://", "https://")):
        raise UsageError(
            f"metadata({text!r}) names a metadata service; asyncflow records runs in a store "
            "file, not a service: pass the path of a store file, e.g. "
            'metadata("runs/asyncflow.db").',
            "metadata",
        )
    if not text.strip():
        raise UsageError(
            f"metadata({ms!r}) names no store file; pass its path, e.g. "
            'metadata("runs/asyncflow.db").',
            "metadata",
        )
    set_default_store(os.path.abspath(os.path.expanduser(text)))
    return get_metadata()


def default_metadata() -> str:
    """Forget the store chosen with :func:`metadata`; return the default store, as
    :func:`get_metadata` does."""
    set_default_store(None)
    return get_metadata()
