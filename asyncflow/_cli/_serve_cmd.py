"""``asyncflow serve``: a local web UI of a store's runs (see :mod:`asyncflow._report._serve`,
imported when the command runs, not with the parser).

Registered by :func:`asyncflow._cli._store_cmds.build_parser`; errors are reported the same
way as the other commands' (one line, exit code 2). Stopped by Ctrl-C or SIGTERM: one line,
exit code 0.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from .._client._archive import read_archive
from ._pathspecs import BadInput
from ._pathspecs import store_option_arg as _store_option

__all__ = ["add_serve_command"]


def _port(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(
            f"must be a port number from 0 (a free port) to 65535, not {text[:20]!r}"
        )
    return value


def _host(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("names no host; leave --host out to serve 127.0.0.1")
    return text.strip()


def _cmd_serve(args: argparse.Namespace) -> int:
    from .._report._serve import serve

    if args.store is not None and args.archive is not None:
        raise BadInput(
            "serve reads the runs of one file: give --store PATH (a store) or --archive FILE "
            "(a run archive), not both"
        )
    source = args.store
    if args.archive is not None:
        source = os.path.abspath(args.archive)
        read_archive(source)  # refuses a file that is not a run archive, before serving
    return serve(source, host=args.host, port=args.port, allow_hosts=args.allow_host)


def add_serve_command(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``serve`` to a subparsers action (sets ``handler``, as the other commands)."""
    serve = sub.add_parser(
        "serve",
        help="a local web UI of the store's runs, live while they go",
        description=(
            "Serve a web UI of the store's runs: a list filterable by flow, status and tag, "
            "and each run's report page, updated live while the run is going. Listens on "
            "127.0.0.1 (this machine only) unless --host says otherwise. --archive serves a run "
            "archive in place. Needs the ui extra: "
            "pip install 'asyncflow[ui]'."
        ),
    )
    _store_option(serve)
    serve.add_argument(
        "--archive",
        metavar="FILE",
        default=None,
        help="serve the runs of a run archive instead (read in place, never imported)",
    )
    serve.add_argument(
        "--port",
        type=_port,
        default=8765,
        metavar="P",
        help="the port (default 8765; 0: a free one)",
    )
    serve.add_argument(
        "--host",
        type=_host,
        default="127.0.0.1",
        metavar="H",
        help="the address to listen on (default 127.0.0.1; anything else is reachable from "
        "other machines, and warned about)",
    )
    serve.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests addressed to this host name (repeatable; IP addresses, "
        "localhost and, with --host beyond loopback, this machine's names always are)",
    )
    serve.set_defaults(handler=_cmd_serve)
