"""``python flow.py run|show|check``: the command line every flow file gets from ``main()``.

Exit codes: 0 success; 1 the run failed (a step raised); 2 bad input (usage, flow
definition, parameters, store), reported on one line without a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

import anyio

from .._errors import AsyncflowError, StepFailed
from .._spec._params import Parameter, parameters_of
from ._parser import OneLineParser

__all__ = ["flow_main"]


def _add_parameter(parser: argparse.ArgumentParser, param: Parameter) -> None:
    default = "(no default)" if not param.has_default else repr(param.default)
    kind = "path of a file" if param.is_file else getattr(param.type, "__name__", "value")
    text = f"{param.help or ''} [{kind}; default {default}]".strip()
    parser.add_argument(
        f"--{param.name}",
        dest=f"param:{param.name}",
        metavar="VALUE",
        default=None,
        help=text,
    )


def _build(flow_cls: type) -> OneLineParser:
    name = flow_cls.__name__
    parser = OneLineParser(
        prog=f"{sys.argv[0] if sys.argv and sys.argv[0] else name}",
        description=(flow_cls.__doc__ or name).strip().splitlines()[0],
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    run = sub.add_parser("run", help="run the flow")
    for param in _declared(flow_cls).values():
        _add_parameter(run, param)
    run.add_argument("--max-workers", type=int, default=None, help="tasks at once (16)")
    run.add_argument("--store", default=None, help="the store file ($ASYNCFLOW_STORE)")
    run.add_argument("--tag", action="append", default=[], help="tag the run (repeatable)")
    run.add_argument("--quiet", action="store_true", help="do not echo task output")
    show = sub.add_parser("show", help="print the graph")
    show.add_argument("--mermaid", action="store_true", help="as a Mermaid flowchart")
    sub.add_parser("check", help="validate the flow and exit")
    return parser


def _declared(flow_cls: type) -> dict[str, Parameter]:
    try:
        return parameters_of(flow_cls)
    except AsyncflowError:
        return {}  # reported by the command itself, on one line


def _fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _cmd_run(flow_cls: Any, args: argparse.Namespace) -> int:
    given = {
        key.split(":", 1)[1]: value
        for key, value in vars(args).items()
        if key.startswith("param:") and value is not None
    }
    options: dict[str, Any] = {"tags": args.tag, "echo": not args.quiet}
    if args.store is not None:
        options["store"] = args.store
    if args.max_workers is not None:
        if args.max_workers < 1:
            return _fail(f"--max-workers must be at least 1, not {args.max_workers}", 2)
        options["max_workers"] = args.max_workers
    flow = flow_cls(**options)
    started = time.perf_counter()
    try:
        run = anyio.run(lambda: flow.run(**given))
    except StepFailed as exc:
        return _fail(f"run {exc.run.pathspec} failed: {exc}", 1)
    except AsyncflowError as exc:
        return _fail(str(exc), 2)
    took = time.perf_counter() - started
    print(f"Run {run.pathspec} succeeded in {took:.2f} s (store: {flow._af_options.store_path})")
    return 0


def flow_main(flow_cls: Any, argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``) and run the command; return the exit code."""
    args = _build(flow_cls).parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        graph = flow_cls._af_graph()
        parameters_of(flow_cls)
    except AsyncflowError as exc:
        return _fail(str(exc), 2)
    if args.command == "show":
        print(graph.to_mermaid() if args.mermaid else graph.to_text())
        return 0
    if args.command == "check":
        print(f"{graph.name} is valid: {len(graph)} steps.")
        return 0
    return _cmd_run(flow_cls, args)
