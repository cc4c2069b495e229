"""Command-line front ends: ``asyncflow ...`` looks into a store (``_store_cmds``);
``python flow.py ...`` runs a flow (``_flow_cmds``).

``main`` is the ``asyncflow`` console script and ``python -m asyncflow``. Both are imported
on first use, not with the package: ``import asyncflow`` installs the definition hook of
``_entry`` (a small module) and must not pay for argparse and every command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["flow_main", "main"]

if TYPE_CHECKING:
    from ._flow_cmds import flow_main as flow_main
    from ._store_cmds import main as main
else:

    def __getattr__(name: str) -> object:
        if name == "flow_main":
            from ._flow_cmds import flow_main

            return flow_main
        if name == "main":
            from ._store_cmds import main

            return main
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
