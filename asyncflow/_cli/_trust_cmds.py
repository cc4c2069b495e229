"""``asyncflow trust``: trust runs from the shell, so that their pickled values load.

Registered by :func:`asyncflow._cli._store_cmds.add_store_commands`, whose pathspec and
option helpers it shares; errors are reported the same way (one line, exit 2).
"""

from __future__ import annotations

import argparse
from typing import Any

from .._client import Flow
from ._pathspecs import split as _split
from ._pathspecs import store_option_arg as _store_option

__all__ = ["add_trust_command"]


def _cmd_trust(args: argparse.Namespace) -> int:
    # Every pathspec is parsed before any run is trusted: a typo trusts nothing.
    targets = [_split(text, (2,), "Flow/run") for text in args.pathspecs]
    for flow, run_id in targets:
        run = Flow(flow, args.store)[run_id]
        run.trust()
        print(f"Trusted {run.pathspec}: its pickled values are checked, signed and load now.")
    return 0


def add_trust_command(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``trust`` to a subparsers action (sets ``handler``, as the other commands)."""
    trust = sub.add_parser(
        "trust",
        help="trust runs: check their pickled values, sign them with your key",
        description=(
            "Trust runs whose author you trust, so that their pickled artifacts load: every "
            "pickled value is checked against its hash, then signed with your key "
            "($ASYNCFLOW_KEY_FILE). Unpickling runs code: trust only runs you would run."
        ),
    )
    trust.add_argument("pathspecs", nargs="+", metavar="PATHSPEC", help="Flow/run")
    _store_option(trust)
    trust.set_defaults(handler=_cmd_trust)
