"""``asyncflow runs|show|dump``: look into a store from the shell (``logs|events``: see
``_watch_cmds``; ``tag|gc|stats``: ``_tidy_cmds``).

Exit codes: 0 success; 2 wrong input (usage, pathspec, a missing flow, run, step, task or
artifact, a missing or foreign store), reported as one line ``asyncflow: error: ...`` on
stderr, without a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .._client import DataArtifact, Flow, Run, Step, Task, list_flows
from .._errors import AsyncflowError, UntrustedArtifactError, store_option
from .._store._paths import resolve_store_path
from .._store._records import MAX_ID
from .._version import __version__
from ._dump_file import refuse_existing, write_bytes, write_value
from ._format import (
    byte_size,
    dump_text,
    duration,
    indent_lines,
    one_line,
    printable,
    short_repr,
    table,
    when,
)
from ._parser import OneLineParser
from ._pathspecs import PROG, BadInput
from ._pathspecs import resolve as _resolve
from ._pathspecs import split as _split
from ._pathspecs import store_option_arg as _store_option

__all__ = ["BadInput", "add_store_commands", "build_parser", "main"]

# Values up to this size are loaded to show a short repr in `show Flow/run/step/task`.
SHOW_VALUE_BYTES = 4096

Handler = Callable[[argparse.Namespace], int]


# --- runs -----------------------------------------------------------------------------------


def _project(run: Run) -> str:
    return f"{run.project_name}/{run.branch_name}" if run.project_name else "-"


def _runs_table(runs: Sequence[Run]) -> list[str]:
    # The project column appears when a listed run belongs to a @project.
    projects = any(r.project_name for r in runs)
    rows = [
        [
            r.flow_name,
            r.id,
            r.status,
            when(r.created_at),
            duration(r.created_at, r.finished_at),
            *([_project(r)] if projects else []),
            ",".join(sorted(r.tags)) or "-",
        ]
        for r in runs
    ]
    headers = ["flow", "run", "status", "created (UTC)", "duration"]
    return table([*headers, *(["project/branch"] if projects else []), "tags"], rows)


def _cmd_runs(args: argparse.Namespace) -> int:
    store = resolve_store_path(args.store)
    names = [args.flow] if args.flow else list_flows(store)
    runs = [run for name in names for run in Flow(name, store).runs(*args.tag, limit=args.limit)]
    runs.sort(key=lambda r: (r.created_at, int(r.id)), reverse=True)
    runs = runs[: args.limit] if args.limit is not None else runs
    if not runs:
        tags = f" tagged {', '.join(args.tag)}" if args.tag else ""
        print(printable(f"No runs{tags} in {store}."))
        return 0
    print("\n".join(_runs_table(runs)))
    return 0


# --- show -----------------------------------------------------------------------------------


def _show_run(run: Run) -> list[str]:
    lines = [f"Run {run.pathspec}  {run.status}", f"created   {when(run.created_at)} UTC"]
    if run.finished_at is not None:
        took = duration(run.created_at, run.finished_at)
        lines.append(f"finished  {when(run.finished_at)} UTC ({took})")
    lines.append(f"tags      {', '.join(sorted(run.tags)) or '-'}")
    lines.append(f"system    {', '.join(sorted(run.system_tags)) or '-'}")
    if run.project_name:
        lines.append(f"project   {run.project_name} (branch {run.branch_name})")
    if run.origin_run_id is not None:
        lines.append(f"resumed   from {run.flow_name}/{run.origin_run_id}")
    if run.error:
        lines.append(f"error     {one_line(run.error, 200)}")
    try:
        params = run.parameters
    except UntrustedArtifactError as exc:  # a pickled parameter of a run not trusted
        lines.append("parameters  " + one_line(f"<cannot load: {exc}>", 1000))
    else:
        lines.append("parameters" + ("" if params else "  (none)"))
        lines += ["  " + line for line in table(["name", "value"], _values(params))[1:]]
    steps = list(run)
    lines.append("steps" + ("" if steps else "  (no finished task yet)"))
    rows = [[s.name, str(len(s)), _outcomes(s)] for s in steps]
    lines += ["  " + line for line in table(["step", "tasks", "status"], rows)] if rows else []
    return lines


def _values(params: dict[str, object]) -> list[list[str]]:
    return [[name, short_repr(value)] for name, value in params.items()]


def _outcomes(step: Step) -> str:
    counts: dict[str, int] = {}
    for task in step:
        counts[task.status] = counts.get(task.status, 0) + 1
    if len(counts) == 1 and len(step) == 1:
        return next(iter(counts))
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))


def _index(task: Task) -> str:
    return ".".join(map(str, task.foreach_indices)) or "-"


def _show_step(step: Step) -> list[str]:
    lines = [f"Step {step.pathspec}  {len(step)} task{'s' if len(step) != 1 else ''}"]
    rows = [
        [
            t.id,
            _index(t),
            t.status,
            when(t.started_at),
            duration(t.started_at, t.finished_at),
            one_line((t.exception or "").split("\n", 1)[0]),
        ]
        for t in step
    ]
    headers = ["task", "index", "status", "started (UTC)", "duration", "exception"]
    return lines + ["  " + line for line in table(headers, rows)]


def _artifact_value(art: DataArtifact) -> str:
    if art.size > SHOW_VALUE_BYTES:
        return "..."
    try:
        return short_repr(art.data)
    except AsyncflowError as exc:
        return one_line(f"<cannot load: {exc}>")


def _show_task(task: Task) -> list[str]:
    lines = [
        f"Task {task.pathspec}  {task.status}",
        f"index     {_index(task)}",
        f"started   {when(task.started_at)} UTC",
        f"finished  {when(task.finished_at)} UTC ({duration(task.started_at, task.finished_at)})",
    ]
    if task.exception:
        lines.append(f"exception {task.exception}")
    if task.traceback:
        lines.append("traceback")
        lines.append(indent_lines(task.traceback, "  ").rstrip("\n"))
    arts = list(task)
    lines.append("artifacts" + ("" if arts else "  (none)"))
    rows = [[a.name, a.encoding, byte_size(a.size), _artifact_value(a)] for a in arts]
    if rows:
        lines += ["  " + line for line in table(["name", "encoding", "size", "value"], rows)]
    return lines


def _print_source(args: argparse.Namespace) -> int:
    parts = _split(args.pathspec, (2,), "Flow/run (--source prints the source of a run)")
    run = Flow(parts[0], args.store)[parts[1]]
    text = run.source
    if text is None:
        print(printable(f"{PROG}: {run.pathspec} has no stored source code"), file=sys.stderr)
        return 0
    sys.stdout.write(printable(text if text.endswith("\n") else text + "\n"))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    if args.source:
        return _print_source(args)
    parts = _split(args.pathspec, (1, 2, 3, 4), "Flow[/run[/step[/task]]]")
    target = _resolve(parts, args.store)
    if isinstance(target, Flow):
        lines = _runs_table(target.runs())
    elif isinstance(target, Run):
        lines = _show_run(target)
    elif isinstance(target, Step):
        lines = _show_step(target)
    else:
        lines = _show_task(target)
    print(printable("\n".join(lines)))
    return 0


# --- dump -----------------------------------------------------------------------------------


def _dump_target(args: argparse.Namespace) -> DataArtifact:
    shapes = "Flow/run/step/task/artifact, Flow/run/step/task ARTIFACT, or Flow/run/artifact"
    name = getattr(args, "name", None)
    parts = _split(args.pathspec, (3, 4, 5) if name is None else (4,), shapes)
    if len(parts) == 4:
        if name is None:
            raise BadInput(f"bad pathspec {args.pathspec!r}: expected {shapes}")
        parts.append(name)
    if len(parts) == 3:
        return Flow(parts[0], args.store)[parts[1]].end_task[parts[2]]
    task = _resolve(parts[:4], args.store)
    assert isinstance(task, Task)
    return task[parts[4]]


def _cmd_dump(args: argparse.Namespace) -> int:
    if args.output == "":
        raise BadInput("-o '' names no file; give -o the name of the file to write the value to")
    art = _dump_target(args)
    force = getattr(args, "force", False)
    store = resolve_store_path(args.store)
    if args.output:
        refuse_existing(args.output, force, store)  # before reading a value that may be large
    if args.raw:
        payload = art._raw().payload
        if args.output:
            write_bytes(args.output, payload, force, store)
        else:
            sys.stdout.flush()
            sys.stdout.buffer.write(payload)
            sys.stdout.buffer.flush()
        return 0
    value = art.data
    if args.output:  # the whole value, in a form that loads back (see _dump_file)
        how = write_value(args.output, value, force, store)
        print(printable(f"wrote {art.pathspec} to {args.output}: {how}"), file=sys.stderr)
        return 0
    print(printable(dump_text(value, art.pathspec, store_option(store))))
    return 0


# --- the parser -----------------------------------------------------------------------------


def _positive(text: str) -> int:
    digits = text.strip().lstrip("+")
    if len(digits.lstrip("0")) > len(str(MAX_ID)):  # before int(), which refuses 5,000 digits
        raise argparse.ArgumentTypeError(f"must be at most {MAX_ID}, not {text[:20]!r}...")
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    if value > MAX_ID:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_ID}, not {value}")
    return value


def add_store_commands(
    sub: argparse._SubParsersAction[Any],
) -> None:
    """Add ``runs``, ``show``, ``dump``, ``logs``, ``events``, ``tag``, ``gc``, ``stats`` and
    ``trust`` to a subparsers action.

    Each sets ``handler`` (a function of the parsed namespace returning the exit code).
    """
    runs = sub.add_parser("runs", help="list runs, newest first")
    runs.add_argument("flow", nargs="?", metavar="FLOW", help="only this flow's runs")
    _store_option(runs)
    runs.add_argument(
        "--tag", action="append", default=[], metavar="T", help="only runs with this tag"
    )
    runs.add_argument("--limit", type=_positive, metavar="N", help="at most N runs")
    runs.set_defaults(handler=_cmd_runs)

    show = sub.add_parser("show", help="summarise a run, a step or a task")
    show.add_argument("pathspec", metavar="PATHSPEC", help="Flow[/run[/step[/task]]]")
    _store_option(show)
    show.add_argument(
        "--source", action="store_true", help="print the flow source stored with the run"
    )
    show.set_defaults(handler=_cmd_show)

    dump = sub.add_parser("dump", help="print an artifact's value, or write it to a file")
    dump.add_argument(
        "pathspec", metavar="PATHSPEC", help="Flow/run/step/task/artifact (or Flow/run/artifact)"
    )
    dump.add_argument(
        "name", nargs="?", default=None, metavar="ARTIFACT", help="after Flow/run/step/task"
    )
    _store_option(dump)
    dump.add_argument("--raw", action="store_true", help="write the stored payload bytes")
    dump.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write the whole value to FILE: a numpy array as .npy, bytes as they are, a str "
        "as UTF-8 text, anything else as a pickle",
    )
    dump.add_argument("--force", action="store_true", help="replace FILE if it exists")
    dump.set_defaults(handler=_cmd_dump)

    # Imported here: these modules use this module's pathspec and option helpers.
    from ._watch_cmds import add_watch_commands

    add_watch_commands(sub)  # logs, events
    from ._tidy_cmds import add_tidy_commands

    add_tidy_commands(sub)
    from ._trust_cmds import add_trust_command

    add_trust_command(sub)


def build_parser() -> OneLineParser:
    """The ``asyncflow`` command's parser."""
    parser = OneLineParser(prog=PROG, description="Look into an asyncflow store.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=OneLineParser
    )
    add_store_commands(sub)
    from ._archive_cmds import add_archive_commands

    add_archive_commands(sub)
    from ._report_cmd import add_report_command

    add_report_command(sub)
    from ._serve_cmd import add_serve_command

    add_serve_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``asyncflow`` command with ``argv`` (default ``sys.argv[1:]``); return its code:
    130, with nothing printed, when Ctrl-C (SIGINT) interrupts it."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        return 130


def _main(argv: list[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already reported
        return exc.code if isinstance(exc.code, int) else 2
    handler: Handler = args.handler
    try:
        return handler(args)
    except (AsyncflowError, BadInput, OSError) as exc:
        if isinstance(exc, BrokenPipeError):
            return _reader_gone()
        message = one_line(str(exc), sys.maxsize)
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2


def _reader_gone() -> int:
    # The reader of our output went away (e.g. `| head`): nothing is wrong; silence the
    # interpreter's final flush of stdout, which would fail again.
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
