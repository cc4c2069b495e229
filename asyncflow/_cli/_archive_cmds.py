"""``asyncflow export|import|archive``: move runs between stores as one file.

``export`` and ``import`` run under the same signal handling as ``python flow.py run``: SIGINT
(Ctrl-C) or SIGTERM cancels the copy, which leaves no archive (nor its temporary file) and the
target store as it was; the exit code is then 128 + the signal's number.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from .._client import Flow, Run
from .._client._archive import ArchiveManifest, _export, _in_thread, import_runs, read_archive
from .._errors import AsyncflowError
from ._format import byte_size, printable, when
from ._signals import SIGNAL_NAMES, run_under_signals

__all__ = ["add_archive_commands"]

PROG = "asyncflow"


def _runs_of(pathspecs: list[str], store: str | None) -> list[Run]:
    """The runs named by ``Flow/run`` (one run) or ``Flow`` (all its runs), in order."""
    from ._pathspecs import BadInput

    chosen: list[Run] = []
    flows: dict[str, Flow] = {}
    for text in pathspecs:
        parts = [p.strip() for p in text.strip().strip("/").split("/")]
        if len(parts) not in (1, 2) or not all(parts):
            raise BadInput(f"bad pathspec {text!r}: expected Flow/run, or Flow for all its runs")
        flow = flows.get(parts[0])
        if flow is None:
            flow = flows[parts[0]] = Flow(parts[0], store)
        chosen.extend([flow[parts[1]]] if len(parts) == 2 else reversed(flow.runs()))
    return chosen


def _manifest_lines(info: ArchiveManifest) -> list[str]:
    # Every field comes from the archive, which may come from anyone: escaped for the terminal.
    return [
        printable(line)
        for line in (
            f"archive:   {info.path}",
            f"exported:  {when(info.exported_at)} by {info.user or '?'} on {info.host or '?'}",
            f"from:      {info.source}",
            f"asyncflow: {info.asyncflow_version} (schema {info.schema_version})",
            f"runs:      {', '.join(info.runs)}",
            f"values:    {info.blobs} ({byte_size(info.payload_bytes)})",
            f"digest:    {info.digest}",
        )
    ]


T = TypeVar("T")


def _cancellable(work: Callable[[threading.Event], T]) -> tuple[T | None, int | None]:
    """Run ``work(stop)`` in a worker thread, cancelled (``stop`` set, the thread awaited)
    on SIGINT or SIGTERM: its result, or None if cancelled first; and the signal, if any."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:  # called from async code (main() inside a loop): its owner handles signals
        return work(threading.Event()), None
    received: list[int] = []
    finished: list[T] = []

    def tracked(stop: threading.Event) -> T:
        finished.append(work(stop))
        return finished[0]

    outcome = run_under_signals(lambda: _in_thread(tracked), received)
    if isinstance(outcome, AsyncflowError):
        raise outcome
    return (finished[0] if finished else None), (received[0] if received else None)


def _cancelled(what: str, signum: int, done: bool) -> int:
    by = SIGNAL_NAMES.get(signum, str(signum))
    what = printable(what)
    if done:
        print(f"{what} had finished when {by} arrived; it is complete", file=sys.stderr)
    else:
        print(f"{what} was cancelled by {by}; nothing was written", file=sys.stderr)
    return 128 + signum


def _cmd_export(args: argparse.Namespace) -> int:
    runs = _runs_of(args.pathspecs, args.store)
    info, signum = _cancellable(lambda stop: _export(args.output, runs, args.force, stop))
    if info is None:
        assert signum is not None
        return _cancelled(f"the export to {args.output}", signum, False)
    print(
        printable(
            f"Exported {len(info.runs)} run(s) ({', '.join(info.runs)}) to {info.path}: "
            f"{info.blobs} values, {byte_size(info.payload_bytes)}"
        )
    )
    return 0 if signum is None else _cancelled(f"the export to {args.output}", signum, True)


def _cmd_import(args: argparse.Namespace) -> int:
    done, signum = _cancellable(lambda stop: import_runs(args.file, args.store, args.trust, stop))
    if done is None:
        assert signum is not None
        return _cancelled(f"the import of {args.file}", signum, False)
    for item, run in done:
        source = printable(f"{item.flow}/{item.archive_id}")
        if item.existed:
            print(f"{source}: already in the store as {printable(run.pathspec)}; not copied again")
        else:
            trusted = " (trusted)" if args.trust else ""
            print(f"{source}: imported as {printable(run.pathspec)}{trusted}")
    return 0 if signum is None else _cancelled(f"the import of {args.file}", signum, True)


def _cmd_archive(args: argparse.Namespace) -> int:
    info = read_archive(args.file, verify=args.verify)
    print("\n".join(_manifest_lines(info)))
    if args.verify:
        print("verified:  every record and every value matches the digest")
    return 0


def add_archive_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``export``, ``import`` and ``archive`` to a subparsers action."""
    from ._pathspecs import store_option_arg as _store_option

    export = sub.add_parser("export", help="write runs into a run archive (one file)")
    export.add_argument(
        "pathspecs", nargs="+", metavar="PATHSPEC", help="Flow/run, or Flow for all its runs"
    )
    export.add_argument("-o", "--output", required=True, metavar="FILE", help="the archive")
    _store_option(export)
    export.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    export.set_defaults(handler=_cmd_export)

    imp = sub.add_parser("import", help="copy the runs of an archive into a store")
    imp.add_argument("file", metavar="FILE", help="the archive")
    _store_option(imp)
    imp.add_argument(
        "--trust",
        action="store_true",
        help="trust the runs: let their pickled values load (only for archives you trust)",
    )
    imp.set_defaults(handler=_cmd_import)

    show = sub.add_parser("archive", help="show an archive's manifest")
    show.add_argument("file", metavar="FILE", help="the archive")
    show.add_argument(
        "--verify", action="store_true", help="check every record and value (reads it all)"
    )
    show.set_defaults(handler=_cmd_archive)
