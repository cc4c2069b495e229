"""``asyncflow report``: write the HTML report of a run, from a store or straight from a run
archive (read in place, checked, never imported: the archive's bytes stay as they are).

Registered by :func:`asyncflow._cli._store_cmds.build_parser`; errors are reported as the
other commands' (one line, exit code 2). The report's parts are imported when the command
runs, not with the command line.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from .._client import Flow, list_flows
from .._client._archive import read_archive
from .._client._messages import unknown_flow
from .._store._paths import resolve_store_path
from ._format import byte_size, printable
from ._pathspecs import BadInput
from ._pathspecs import split as _split

__all__ = ["add_report_command"]


def _cmd_report(args: argparse.Namespace) -> int:
    from ..report import refuse_target, render_report, write_text

    if args.store is not None and args.archive is not None:
        raise BadInput(
            "report reads a run from one file: give --store PATH (a store) or --archive FILE "
            "(a run archive), not both"
        )
    parts = _split(args.pathspec, (1, 2), "Flow/run (or Flow alone: its latest run)")
    if args.archive is not None:
        source = os.path.abspath(args.archive)
        read_archive(source)  # refuses a file that is not a run archive, before any read
    else:
        source = resolve_store_path(args.store)
    refuse_target(args.output, args.force, source, "--force")  # before reading the run
    flow = Flow(parts[0], source, trust=args.trust)
    run = flow[parts[1]] if len(parts) == 2 else flow.latest_run
    if run is None:  # its last run was deleted meanwhile (gc): the client says what there is
        raise unknown_flow(parts[0], source, list_flows(source))
    text = render_report(run)
    write_text(args.output, text, args.force, source, "--force")
    size = byte_size(os.path.getsize(args.output))
    print(printable(f"wrote the report of {run.pathspec} to {args.output} ({size})"),
          file=sys.stderr)  # fmt: skip
    return 0


def add_report_command(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``report`` to a subparsers action (sets ``handler``, as the other commands)."""
    report = sub.add_parser(
        "report",
        help="write a run's report: one self-contained HTML file",
        description=(
            "Write the report of a run (or of a flow's latest run) to one HTML file that "
            "needs nothing else to be viewed: status, parameters, graph, a timeline of every "
            "task, artifacts, output, errors and cards. --archive reads a run archive in "
            "place (checked, not imported, left unchanged)."
        ),
    )
    report.add_argument(
        "pathspec", metavar="PATHSPEC", help="Flow/run, or Flow alone for its latest run"
    )
    report.add_argument(
        "-o", "--output", required=True, metavar="FILE", help="the HTML file to write"
    )
    report.add_argument(
        "--store",
        metavar="PATH",
        default=None,
        help="the store file (default: $ASYNCFLOW_STORE, else the nearest asyncflow.db upward)",
    )
    report.add_argument("--archive", metavar="FILE", default=None, help="a run archive to read")
    report.add_argument("--force", action="store_true", help="replace FILE if it exists")
    report.add_argument(
        "--trust",
        action="store_true",
        help="load the run's pickled values whoever wrote them (only for runs you trust)",
    )
    report.set_defaults(handler=_cmd_report)
