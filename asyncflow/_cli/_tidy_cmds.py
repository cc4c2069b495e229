"""``asyncflow tag|gc|stats``: keep a store tidy from the shell.

Registered by :func:`asyncflow._cli._store_cmds.add_store_commands`, whose pathspec and
option helpers these commands share; errors are reported the same way (one line, exit 2).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from .._client import Flow
from .._client._tidy import GcReport, StoreStats, gc, stats
from ._format import byte_size
from ._pathspecs import split as _split
from ._pathspecs import store_option_arg as _store_option

__all__ = ["add_tidy_commands", "gc_lines", "stats_lines"]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


# --- tag -------------------------------------------------------------------------------------


def _cmd_tag(args: argparse.Namespace) -> int:
    parts = _split(args.pathspec, (2,), "Flow/run")
    run = Flow(parts[0], args.store)[parts[1]]
    if args.remove:
        run.remove_tag(*args.tags)
    else:
        run.add_tag(*args.tags)
    print(f"{run.pathspec} tags: {', '.join(sorted(run.tags)) or '-'}")
    return 0


# --- gc --------------------------------------------------------------------------------------


def gc_lines(report: GcReport) -> list[str]:
    """A short summary of ``report``; a dry run lists the runs that would go."""
    runs = _plural(len(report.deleted), "run")
    blobs = _plural(report.blobs_deleted, "stored value")
    freed = byte_size(report.bytes_freed)
    if report.dry_run:
        lines = [
            f"Would delete {runs} and {blobs} ({freed}) from {report.store}"
            + ":" * bool(report.deleted)
        ]
        lines += [f"  {pathspec}" for pathspec in report.deleted]
    else:
        lines = [
            f"Deleted {runs} and {blobs} ({freed}) from {report.store}.",
            f"File size: {byte_size(report.size_before)} -> {byte_size(report.size_after)}.",
        ]
    if report.skipped:
        verb = "Would keep" if report.dry_run else "Kept"
        lines.append(f"{verb} {_plural(len(report.skipped), 'selected run')}:")
        lines += [
            f"  {pathspec} ({report.skipped_why.get(pathspec, 'kept')})"
            for pathspec in report.skipped
        ]
    if report.note:
        lines.append(f"Note: {report.note}.")
    return lines


def _cmd_gc(args: argparse.Namespace) -> int:
    report = gc(
        args.store,
        flow=args.flow,
        keep_last=args.keep_last,
        older_than=args.older_than,
        tag=args.tag,
        dry_run=args.dry_run,
        protect=args.protect,
    )
    print("\n".join(gc_lines(report)))
    return 0


# --- stats -----------------------------------------------------------------------------------


def stats_lines(found: StoreStats) -> list[str]:
    """``found`` as a short table of labelled lines (an archive's manifest at the end)."""
    by_status = ", ".join(f"{status} {count}" for status, count in found.runs.items())
    lines = [
        f"store       {found.store}",
        f"flows       {found.flows}",
        f"runs        {found.total_runs}" + (f" ({by_status})" if by_status else ""),
        f"tasks       {found.tasks}",
        f"artifacts   {found.artifacts}",
        f"values      {found.blobs} stored, {byte_size(found.stored_bytes)} of payload",
        f"referenced  {byte_size(found.referenced_bytes)} by artifacts and parameters "
        f"(dedup ratio {found.dedup_ratio:.2f})",
        f"file        {byte_size(found.file_bytes)} on disk (with -wal), "
        f"{byte_size(found.reclaimable_bytes)} reclaimable by gc",
    ]
    if found.archive is not None:
        lines.append("archive     a read-only run archive; its manifest:")
        text = json.dumps(found.archive, indent=2, sort_keys=True, default=str)
        lines += ["  " + line for line in text.splitlines()]
    return lines


def _cmd_stats(args: argparse.Namespace) -> int:
    found = stats(args.store)
    if args.json:
        print(json.dumps(found.to_json(), indent=2, default=str))
    else:
        print("\n".join(stats_lines(found)))
    return 0


# --- the parsers -----------------------------------------------------------------------------


def add_tidy_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``tag``, ``gc`` and ``stats`` to a subparsers action (each sets ``handler``)."""
    tag = sub.add_parser("tag", help="add tags to a run (or remove them with --remove)")
    tag.add_argument("pathspec", metavar="PATHSPEC", help="Flow/run")
    tag.add_argument("tags", nargs="+", metavar="TAG", help="the tags")
    tag.add_argument("--remove", action="store_true", help="remove the tags instead")
    _store_option(tag)
    tag.set_defaults(handler=_cmd_tag)

    collect = sub.add_parser(
        "gc",
        help="delete old runs and the values only they held, and shrink the file",
        description="Delete the runs that match every criterion given (at least one of "
        "--keep-last, --older-than and --tag), then every stored value no remaining run "
        "references. Live runs and runs with a protected tag (keep) are never deleted.",
    )
    _store_option(collect)
    collect.add_argument("--flow", metavar="F", help="only runs of this flow")
    collect.add_argument(
        "--keep-last", type=int, metavar="N", help="keep each flow's N newest runs (N >= 1)"
    )
    collect.add_argument(
        "--older-than", metavar="AGE", help="only runs created longer ago, e.g. 30m, 12h, 7d, 2w"
    )
    collect.add_argument("--tag", metavar="T", help="only runs with this tag")
    collect.add_argument(
        "--protect",
        action="append",
        metavar="TAG",
        help="never delete runs with this tag (repeatable; replaces the default, keep)",
    )
    collect.add_argument(
        "--dry-run", action="store_true", help="list what would be deleted; change nothing"
    )
    collect.set_defaults(handler=_cmd_gc)

    count = sub.add_parser("stats", help="count runs, tasks, values and bytes in a store")
    _store_option(count)
    count.add_argument("--json", action="store_true", help="print the figures as JSON")
    count.set_defaults(handler=_cmd_stats)
