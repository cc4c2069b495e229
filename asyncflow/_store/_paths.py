"""Where the store lives when the user does not say."""

from __future__ import annotations

import os

__all__ = ["DEFAULT_STORE_NAME", "resolve_store_path"]

DEFAULT_STORE_NAME = "asyncflow.db"


def resolve_store_path(store: str | os.PathLike[str] | None) -> str:
    """``store`` if given, else ``$ASYNCFLOW_STORE``, else ``asyncflow.db`` in the cwd."""
    if store is not None:
        return os.fspath(store)
    return os.environ.get("ASYNCFLOW_STORE") or os.path.join(os.getcwd(), DEFAULT_STORE_NAME)
