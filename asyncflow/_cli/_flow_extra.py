"""The flow-file commands beyond run/resume/show/check: ``dump`` and ``logs`` (Metaflow's
syntax, this flow's name implied, the store found as ``run`` finds it; the work is the store
command line's), and the scheduler and cloud commands asyncflow refuses in one line.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from .._errors import AsyncflowError, AsyncflowWarning, store_option
from .._store._paths import resolve_store_path
from ._format import dump_text, one_line, printable
from ._parser import add_logs_options

# ``_pathspecs`` and ``_watch_cmds`` import the client (aiosqlite, its records): a run does not
# need them, so ``dump`` and ``logs`` import them when they run.

__all__ = ["REFUSED", "add_flow_store_commands", "asyncflow_warnings_as_lines", "refused"]

# Commands of Metaflow's flow command line asyncflow refuses: what each does in Metaflow, and
# what to do instead.
_SCHEDULE_IT = (
    "run the flow where your scheduler or service runs code: `python flow.py run` from a cron "
    "job or CI, or `await XFlow().run()` inside your own service; steps spread over cores "
    "or machines with --executor process or --executor dask"
)
REFUSED: dict[str, tuple[str, str]] = {
    "argo-workflows": ("deploys the flow to Argo Workflows", _SCHEDULE_IT),
    "step-functions": ("deploys the flow to AWS Step Functions", _SCHEDULE_IT),
    "airflow": ("compiles the flow into an Airflow DAG", _SCHEDULE_IT),
    "batch": ("runs or manages steps on AWS Batch", _SCHEDULE_IT),
    "kubernetes": ("runs or manages steps on Kubernetes", _SCHEDULE_IT),
    "package": (
        "packages the flow's code for remote steps",
        "asyncflow runs steps here and stores each run's source with it (`asyncflow show "
        "Flow/run --source`)",
    ),
    "environment": (
        "resolves and builds Conda/PyPI environments",
        "install the packages into this Python yourself; runs check @conda/@pypi packages "
        "before they start",
    ),
    "tag": (
        "adds, removes and lists a run's tags",
        "use `asyncflow tag Flow/run TAG [TAG ...] [--remove]`, or run.add_tag() on the client",
    ),
    "card": (
        "creates and shows a step's cards",
        "cards are drawn in the run's report, one HTML file: `asyncflow report FLOW/RUN -o "
        "run.html`, then open run.html#task=STEP/ID for one task's (read them as data with "
        "task.cards or asyncflow.cards.get_cards)",
    ),
}


def refused(command: str, prog: str) -> int:
    """Say on one line that ``command`` is not supported and what to do instead; exit 2."""
    what, instead = REFUSED[command]
    print(
        printable(
            f"{prog}: error: `{command}` {what} in Metaflow; asyncflow has no such command: "
            f"{instead}."
        ),
        file=sys.stderr,
    )
    return 2


def add_flow_store_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``dump``, ``logs`` and the refused commands to a flow file's subparsers."""
    dump = sub.add_parser(
        "dump",
        help="print the artifacts of a task (RUN/STEP/TASK), of a step's tasks (RUN/STEP), "
        "or one artifact (RUN/STEP/TASK/NAME)",
    )
    dump.add_argument("input_path", metavar="PATHSPEC", help="RUN/STEP[/TASK[/ARTIFACT]]")
    dump.add_argument(
        "name", nargs="?", default=None, metavar="ARTIFACT", help="after RUN/STEP/TASK"
    )
    dump.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        default=None,
        help="write one artifact's whole value to FILE (numpy: .npy; bytes as they are; str: "
        "UTF-8 text; else a pickle)",
    )
    dump.add_argument("--force", action="store_true", help="replace FILE if it exists")
    dump.add_argument(
        "--include", default=None, metavar="NAMES", help="only these artifacts (comma-separated)"
    )
    dump.add_argument("--store", default=None, help="the store file (as for run)")
    logs = sub.add_parser("logs", help="print what tasks wrote (RUN/STEP[/TASK])")
    logs.add_argument("input_path", metavar="PATHSPEC", help="RUN/STEP[/TASK]")
    logs.add_argument("--store", default=None, help="the store file (as for run)")
    add_logs_options(logs)
    for name, (what, _) in REFUSED.items():
        refuse = sub.add_parser(name, help=f"not supported ({what} in Metaflow)", add_help=False)
        refuse.add_argument("rest", nargs=argparse.REMAINDER)


def _full(flow_name: str, text: str, shapes: tuple[int, ...], expected: str) -> list[str]:
    """``Flow/RUN/...`` of a pathspec written as Metaflow writes it (``RUN/STEP/TASK``) or
    with this flow's name in front (a run id is a number, never the flow's name)."""
    from ._pathspecs import split as _split

    parts = text.strip().strip("/").split("/")
    if parts[0].strip() == flow_name and len(parts) - 1 in shapes:
        return [flow_name, *_split("/".join(parts[1:]), shapes, expected)]
    return [flow_name, *_split(text, shapes, expected)]


def flow_dump(flow_name: str, args: argparse.Namespace, store: str | None) -> int:
    """``python flow.py dump RUN/STEP[/TASK[/ARTIFACT]]``."""
    from ._pathspecs import BadInput
    from ._pathspecs import resolve as _resolve
    from ._pathspecs import tasks_of as _tasks_of

    store = resolve_store_path(store)
    parts = _full(flow_name, args.input_path, (2, 3, 4), "RUN/STEP[/TASK[/ARTIFACT]]")
    if args.name is not None:
        if len(parts) != 4:
            raise BadInput(
                f"bad pathspec {args.input_path!r}: expected RUN/STEP/TASK before ARTIFACT"
            )
        parts.append(args.name)
    if len(parts) == 5:
        pathspec = "/".join(parts)
        from ._store_cmds import _cmd_dump  # the store commands: not imported by a run

        return _cmd_dump(
            argparse.Namespace(
                pathspec=pathspec, store=store, raw=False, output=args.output, force=args.force
            )
        )
    if args.output is not None:
        raise BadInput(
            f"-o writes one artifact's value: name it, as {args.input_path}/ARTIFACT or "
            f"{args.input_path} ARTIFACT (RUN/STEP/TASK and its name)"
        )
    target = _resolve(parts, store)
    only = {n.strip() for n in args.include.split(",")} if args.include else None
    for task in _tasks_of(target):  # type: ignore[arg-type]
        print(printable(f"Task {task.pathspec}"))
        for art in task:
            if only is None or art.name in only:
                try:
                    shown = dump_text(art.data, art.pathspec, store_option(store), bare_str=False)
                    text = shown.replace("\n", "\n    ")
                except AsyncflowError as exc:  # a pickle nobody vouches for, say
                    text = one_line(f"<cannot load: {exc}>", 1000)
                print(printable(f"  {art.name} = {text}"))
    return 0


def flow_logs(flow_name: str, args: argparse.Namespace, store: str | None) -> int:
    """``python flow.py logs RUN/STEP[/TASK] [--stdout | --stderr] [--follow]``."""
    from ._watch_cmds import cmd_logs

    parts = _full(flow_name, args.input_path, (2, 3), "RUN/STEP[/TASK]")
    return cmd_logs(
        argparse.Namespace(
            pathspec="/".join(parts),
            store=resolve_store_path(store),
            stdout=args.stdout,
            stderr=args.stderr,
            follow=args.follow,
        )
    )


def run_store_command(flow_name: str, args: argparse.Namespace, store: str | None) -> int:
    """Run ``dump`` or ``logs``; a bad pathspec or a missing run is one line, exit 2."""
    from ._pathspecs import BadInput

    command = flow_dump if args.command == "dump" else flow_logs
    try:
        return command(flow_name, args, store)
    except (AsyncflowError, BadInput, OSError) as exc:
        print(printable(f"error: {exc}"), file=sys.stderr)
        return 2


@contextmanager
def asyncflow_warnings_as_lines(stream: TextIO | None = None) -> Iterator[None]:
    """Within: each :class:`AsyncflowWarning` is one line ``warning: «message»`` on stderr
    (other warnings as Python shows them)."""
    with warnings.catch_warnings():
        shown = warnings.showwarning

        def show(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
            if isinstance(category, type) and issubclass(category, AsyncflowWarning):
                print(printable(f"warning: {message}"), file=stream or sys.stderr, flush=True)
            else:
                shown(message, category, *args, **kwargs)

        warnings.showwarning = show
        warnings.simplefilter("always", AsyncflowWarning)
        yield
