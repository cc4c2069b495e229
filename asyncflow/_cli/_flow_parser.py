"""The parser of a flow file's command line (``python flow.py [options] COMMAND ...``): the
options before the command (as Metaflow writes them), ``run``/``resume`` with the flow's
parameters as options, ``show``, ``check``, and the store commands."""

from __future__ import annotations

import argparse
import sys

from .._errors import AsyncflowError
from .._spec._decorators import EXECUTORS
from .._spec._params import Parameter
from .._spec._project import project_of
from .._spec._resolve import parameters_of
from .._version import __version__
from ._config_opts import add_config_options
from ._decospecs import WITH_HELP, parse_decospec
from ._flow_extra import add_flow_store_commands
from ._parser import OneLineParser, OneStoreOption
from ._spin_cmd import add_spin_command

__all__ = ["build_flow_parser", "merge_top_options"]


def _add_parameter(parser: argparse.ArgumentParser, param: Parameter, *, hidden: bool) -> None:
    default = "(no default)" if not param.has_default else repr(param.default)
    kind = "path of a file" if param.is_file else getattr(param.type, "__name__", "value")
    shown = f"; default {default}" if param.show_default else ""
    text = f"{param.help or ''} [{kind}{shown}]".strip()
    parser.add_argument(
        f"--{param.name}",
        dest=f"param:{param.name}",
        metavar="VALUE",
        default=None,
        help=argparse.SUPPRESS if hidden else text,
    )


def _add_runtime_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-workers", type=int, default=None, help="tasks at once (16)")
    parser.add_argument(
        "--max-passes",
        type=int,
        default=None,
        help="most passes of a step in a loop (1000)",
    )
    parser.add_argument("--store", default=None, help="the store file ($ASYNCFLOW_STORE)")
    parser.add_argument("--tag", action="append", default=[], help="tag the run (repeatable)")
    parser.add_argument("--quiet", action="store_true", help="do not echo task output")
    parser.add_argument(
        "--run-id-file",
        metavar="PATH",
        default=None,
        help="write the run's id to this file as the run starts (as Metaflow does)",
    )
    parser.add_argument(
        "--executor",
        choices=EXECUTORS,
        default=None,
        help="where plain steps run unless they say (@executor): thread (default), process, dask",
    )
    parser.add_argument(
        "--worker-processes",
        type=int,
        default=None,
        help="size of the process pool (default: one per core, at least 2)",
    )
    parser.add_argument(
        "--dask-address",
        default=None,
        help="Dask scheduler for dask steps, e.g. tcp://127.0.0.1:8786 (else a LocalCluster)",
    )
    parser.add_argument(
        "--with",
        dest="decospecs",
        metavar="NAME[:k=v,...]",
        action="append",
        type=parse_decospec,
        default=[],
        help=WITH_HELP,
    )


def _add_project_options(parser: argparse.ArgumentParser, flow_cls: type) -> None:
    # As in Metaflow, --branch and --production come before the command. A flow without
    # @project takes them too, only to refuse them in one clear line (resolve_branch).
    what = "" if project_of(flow_cls) is not None else " (only for a flow with @project)"
    parser.add_argument(
        "--branch",
        dest="top_branch",
        metavar="NAME",
        default=None,
        help=f"run on the @project branch test.NAME, not user.<username>{what}",
    )
    parser.add_argument(
        "--production",
        dest="top_production",
        action="store_true",
        help=f"run on the @project's production branch, prod{what}",
    )


def _add_top_options(parser: argparse.ArgumentParser) -> None:
    # Metaflow's options before the command: `python flow.py --quiet run`. Their own dests,
    # merged into the command's by _merge_top_options (a subparser's defaults would
    # overwrite a value given before the command).
    parser.add_argument("--quiet", dest="top_quiet", action="store_true", help="as `run --quiet`")
    parser.add_argument(
        "--store", dest="top_store", metavar="PATH", default=None, help="as `run --store`"
    )
    parser.add_argument(
        "--with",
        dest="top_decospecs",
        metavar="NAME[:k=v,...]",
        action="append",
        type=parse_decospec,
        default=[],
        help="as `run --with`",
    )
    parser.add_argument(
        "--no-pylint",
        dest="top_no_pylint",
        action="store_true",
        help="accepted as Metaflow takes it, and ignored: asyncflow never runs pylint",
    )
    parser.add_argument(
        "--environment",
        dest="top_environment",
        choices=("local", "conda", "pypi"),
        default="local",
        help="accepted as Metaflow takes it; asyncflow builds no environment: @conda/@pypi "
        "packages are checked to be installed here, with or without this option",
    )
    for option in ("--datastore", "--datastore-root", "--metadata"):
        parser.add_argument(option, action=OneStoreOption, help=argparse.SUPPRESS)
    add_config_options(parser, prefix="top_", file_too=True)
    parser.add_argument("--version", action="version", version=f"asyncflow {__version__}")


def merge_top_options(args: argparse.Namespace) -> None:
    """Options given before the command count as if given after it (where both, after)."""
    if args.command in ("run", "resume"):
        args.quiet = args.quiet or args.top_quiet
        if args.store is None:
            args.store = args.top_store


def build_flow_parser(flow_cls: type) -> OneLineParser:
    """The parser of ``python flow.py ...`` for ``flow_cls``: its parameters as options."""
    name = flow_cls.__name__
    parser = OneLineParser(
        prog=f"{sys.argv[0] if sys.argv and sys.argv[0] else name}",
        description=(flow_cls.__doc__ or name).strip().splitlines()[0],
    )
    _add_top_options(parser)
    _add_project_options(parser, flow_cls)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    run = sub.add_parser("run", help="run the flow")
    for param in _declared(flow_cls).values():
        _add_parameter(run, param, hidden=False)
    _add_runtime_options(run)
    # `run --config NAME FILE` too, unless a Parameter named config owns --config there.
    config_param = "config" in {p.name for p in _declared(flow_cls).values()}
    add_config_options(run, prefix="", file_too=not config_param)
    resume = sub.add_parser(
        "resume",
        help="resume a run: reuse its successful tasks, run the rest",
        description="Start a new run that clones every successful task of an earlier run "
        "(the origin) and runs the failed, cancelled and unfinished ones, with the origin's "
        "parameters.",
    )
    resume.add_argument(
        "step", nargs="?", default=None, help="also re-run this step and every step after it"
    )
    resume.add_argument(
        "--origin-run-id", default=None, metavar="ID", help="the run to resume (the latest)"
    )
    for param in _declared(flow_cls).values():
        _add_parameter(resume, param, hidden=True)  # accepted only to be refused clearly
    _add_runtime_options(resume)
    add_config_options(resume, prefix="", file_too=not config_param)  # refused clearly
    show = sub.add_parser("show", help="print the graph")
    show.add_argument("--mermaid", action="store_true", help="as a Mermaid flowchart")
    sub.add_parser("check", help="validate the flow and exit")
    add_flow_store_commands(sub)
    add_spin_command(sub)
    return parser


def _declared(flow_cls: type) -> dict[str, Parameter]:
    try:
        return parameters_of(flow_cls)
    except AsyncflowError:
        return {}  # reported by the command itself, on one line
