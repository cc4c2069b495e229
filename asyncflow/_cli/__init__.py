"""Command-line front ends: ``asyncflow ...`` looks into a store (``_store_cmds``);
``python flow.py ...`` runs a flow (``_flow_cmds``).

``main`` is the ``asyncflow`` console script and ``python -m asyncflow``.
"""

from ._flow_cmds import flow_main as flow_main
from ._store_cmds import main as main

__all__ = ["flow_main", "main"]
