"""``python flow.py run|resume|show|check|dump|logs``: the command line every flow file gets
from ``main()`` (``dump``, ``logs`` and the refused commands: ``_flow_extra``).

Exit codes: 0 success; 1 the run failed (a step raised); 2 bad input (usage, flow
definition, parameters, store, an unknown run or step to resume), reported on one line
without a traceback; 130 / 143 the run was cancelled by SIGINT (Ctrl-C) / SIGTERM.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio

from .._errors import RESUME_HINT, AsyncflowError, StepFailed, store_option
from .._runtime._attempt import steps_still_running
from .._runtime._packages import before_run
from .._runtime._run import ResumeRequest
from .._spec._decorators import EXECUTORS
from .._spec._override import decorate_graph
from .._spec._params import Parameter
from .._spec._project import project_of
from .._spec._resolve import parameters_of
from .._store._store import Store
from .._version import __version__
from ._config_opts import (
    add_config_options,
    config_lines,
    config_option_problem,
    config_options_given,
    read_for_show,
    with_cli_configs,
)
from ._decospecs import WITH_HELP, merged_decospecs, parse_decospec
from ._flow_extra import (
    REFUSED,
    add_flow_store_commands,
    asyncflow_warnings_as_lines,
    refused,
    run_store_command,
)
from ._format import printable
from ._live import choose_mode, run_shown
from ._parser import OneLineParser, OneStoreOption
from ._run_id_file import run_id_file_problem, write_run_id
from ._signals import SIGNAL_NAMES, run_under_signals
from ._spin_cmd import add_spin_command, cmd_spin
from ._stdout import say, settle_stdout

__all__ = ["flow_main"]


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


def _merge_top_options(args: argparse.Namespace) -> None:
    """Options given before the command count as if given after it (where both, after)."""
    if args.command in ("run", "resume"):
        args.quiet = args.quiet or args.top_quiet
        if args.store is None:
            args.store = args.top_store


def _build(flow_cls: type) -> OneLineParser:
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


def _fail(message: str, code: int) -> int:
    print(f"error: {printable(message)}", file=sys.stderr)
    return code


_MAIN = threading.main_thread()


def _execute(
    flow: Any, start: Callable[[Callable[[int], None]], Awaitable[Any]], args: argparse.Namespace
) -> Any:
    """Run ``start(on_start)`` under signal handling; the Run, an AsyncflowError, or an exit
    code when a signal cancelled the run."""
    name = type(flow).__name__
    run_ids: list[int] = []
    received: list[int] = []

    project = flow._af_options.project
    where = f" (project {project[0]}, branch {project[1]})" if project else ""

    def on_start(run_id: int) -> None:
        run_ids.append(run_id)
        if args.run_id_file:
            write_run_id(args.run_id_file, run_id)
        if not args.quiet:
            say(f"Run {name}/{run_id} started{where}")

    outcome = run_under_signals(lambda: start(on_start), received)
    if outcome is not None:
        return outcome
    signum = received[0] if received else signal.SIGINT
    what = f"run {name}/{run_ids[0]}" if run_ids else f"the {name} run (not started yet)"
    hint = f"; resume it with `{_resume_command(args, run_ids[0])}`" if run_ids else ""
    by = SIGNAL_NAMES.get(signum, str(signum))
    print(f"{what} was cancelled by {by}{hint}", file=sys.stderr)
    code = 128 + signum
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not _MAIN):
        _exit_now(code)
    return code


def _exit_now(code: int) -> None:
    """Exit with ``code`` at once. A plain step still runs in a thread the run abandoned (at
    its @timeout, or when the run stopped); its result is dropped anyway, and the interpreter
    would wait for it before exiting. os._exit skips atexit: close the stores here, so that
    the store is left as one file."""
    Store.close_all()
    settle_stdout()
    sys.stderr.flush()
    os._exit(code)


def _flow_options(args: argparse.Namespace) -> dict[str, Any] | str:
    options: dict[str, Any] = {"tags": args.tag, "echo": not args.quiet}
    if getattr(args, "top_branch", None) is not None:
        options["branch"] = args.top_branch
    if getattr(args, "top_production", False):
        options["production"] = True
    if args.store is not None:
        options["store"] = args.store
    if args.max_workers is not None:
        if args.max_workers < 1:
            return f"--max-workers must be at least 1, not {args.max_workers}"
        options["max_workers"] = args.max_workers
    if args.max_passes is not None:
        if args.max_passes < 1:
            return f"--max-passes must be at least 1, not {args.max_passes}"
        options["max_passes"] = args.max_passes
    if args.executor is not None:
        options["executor"] = args.executor
    if args.worker_processes is not None:
        if args.worker_processes < 1:
            return f"--worker-processes must be at least 1, not {args.worker_processes}"
        options["processes"] = args.worker_processes
    if args.dask_address is not None:
        options["dask_address"] = args.dask_address
    return options


def _given(args: argparse.Namespace) -> dict[str, Any]:
    return {
        key.split(":", 1)[1]: value
        for key, value in vars(args).items()
        if key.startswith("param:") and value is not None
    }


def _cmd_run(flow_cls: Any, args: argparse.Namespace) -> int:
    given = _given(args)
    options = _flow_options(args)
    if isinstance(options, str):
        return _fail(options, 2)
    try:
        flow = flow_cls(**options)
    except AsyncflowError as exc:  # a --tag that cannot be stored
        return _fail(str(exc), 2)
    if problem := _run_id_file_problem(flow, args):
        return _fail(problem, 2)
    _with(flow, args)
    with_cli_configs(flow, args)
    return _run_and_report(flow, args, given, None)


def _run_id_file_problem(flow: Any, args: argparse.Namespace) -> str | None:
    if not args.run_id_file:
        return None
    module = sys.modules.get(type(flow).__module__)
    script = getattr(module, "__file__", None)
    return run_id_file_problem(args.run_id_file, flow._af_options.store_path, script)


def _with(flow: Any, args: argparse.Namespace) -> None:
    # --with: this run's decorators (its own graph gets them when it starts).
    flow._af_options = dataclasses.replace(flow._af_options, decorate=merged_decospecs(args))


def _run_and_report(
    flow: Any, args: argparse.Namespace, given: dict[str, str], request: ResumeRequest | None
) -> int:
    """Run (or resume) under signal handling; print the outcome; return the exit code, or
    exit with it at once when steps it abandoned in threads still run (see _exit_now)."""
    before = steps_still_running()  # embedded in a process with other runs, say: not ours
    code = _run_and_print(flow, args, given, request)
    settle_stdout()  # `run | head`: the run's code, quietly (see _stdout)
    if steps_still_running() - before:
        _exit_now(code)
    return code


def _resume_command(args: argparse.Namespace, run_id: int | str) -> str:
    """A command that resumes run ``run_id`` as printed: `python flow.py ...`, on the store
    and the @project branch this run used."""
    store = store_option(args.store)
    branch = f" --branch {shlex.quote(args.top_branch)}" if args.top_branch else ""
    branch += " --production" if args.top_production else ""
    return f"python {_script()}{branch} resume --origin-run-id {run_id}{store}"


def _script() -> str:
    """How this flow file was started: ``-m pkg.flow`` when Python ran it as a module (the
    file itself may not run alone: relative imports), else its path as given."""
    argv0 = sys.argv[0] or "flow.py"
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    origin = getattr(spec, "origin", None)
    name = getattr(spec, "name", None)
    as_module = isinstance(name, str) and name not in ("", "__main__")
    if as_module and isinstance(origin, str) and os.path.abspath(origin) == os.path.abspath(argv0):
        return "-m " + shlex.quote(str(name).removesuffix(".__main__"))
    return shlex.quote(argv0)


def _run_and_print(
    flow: Any, args: argparse.Namespace, given: dict[str, str], request: ResumeRequest | None
) -> int:
    try:
        mode = "off" if args.quiet else choose_mode()
    except AsyncflowError as exc:
        return _fail(str(exc), 2)
    graph = type(flow)._af_graph()
    started = time.perf_counter()
    outcome = _execute(
        flow,
        lambda on_start: run_shown(
            lambda hub: flow._af_execute(given, request, on_start, events=hub), graph, mode
        ),
        args,
    )
    if isinstance(outcome, int):
        return outcome
    if isinstance(outcome, StepFailed):
        exact = f"`{_resume_command(args, outcome.run.id)}`"
        return _fail(f"run {outcome.run.pathspec} failed: {outcome}".replace(RESUME_HINT, exact), 1)
    if isinstance(outcome, AsyncflowError):
        return _fail(str(outcome), 2)
    took = time.perf_counter() - started
    store = flow._af_options.store_path
    where = f"store: {store}"
    if request is not None:
        where = f"resumed {outcome.flow_name}/{outcome.origin_run_id}; {where}"
    say(f"Run {outcome.pathspec} succeeded in {took:.2f} s ({where})")
    return 0


def _cmd_resume(flow_cls: Any, args: argparse.Namespace) -> int:
    given = _given(args)
    if given:
        names = ", ".join(f"--{n}" for n in given)
        return _fail(
            f"resume reuses the parameters of the run it resumes, so it takes no {names}; "
            "start a new run (`run`) to change them",
            2,
        )
    if configs := config_options_given(args):
        return _fail(
            f"resume reuses the configs of the run it resumes (their files are not read "
            f"again), so it takes no {', '.join(configs)}; start a new run (`run`) to change "
            "them",
            2,
        )
    options = _flow_options(args)
    if isinstance(options, str):
        return _fail(options, 2)
    try:
        flow = flow_cls(**options)
    except AsyncflowError as exc:
        return _fail(str(exc), 2)
    if problem := _run_id_file_problem(flow, args):
        return _fail(problem, 2)
    _with(flow, args)
    return _run_and_report(flow, args, {}, ResumeRequest(args.origin_run_id, args.step))


def flow_main(flow_cls: Any, argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``) and run the command; return the exit code."""
    parser = _build(flow_cls)
    words = list(sys.argv[1:] if argv is None else argv)
    known, extra = parser.parse_known_args(words)
    if extra and known.command in ("run", "resume"):
        # `--batch-size 5` for Parameter("batch-size"): say what is wrong with the declaration
        # rather than calling the option unknown.
        try:
            parameters_of(flow_cls)
        except AsyncflowError as exc:
            return _fail(str(exc), 2)
    args = parser.parse_args(words)
    _merge_top_options(args)
    if problem := config_option_problem(args):
        return _fail(problem, 2)
    if args.command in REFUSED:
        return refused(args.command, os.path.basename(sys.argv[0] or "flow.py"))
    if args.command in ("dump", "logs"):
        return run_store_command(flow_cls.__name__, args, args.store or args.top_store)
    if args.command == "spin":
        return cmd_spin(flow_cls, args, args.store or args.top_store)
    with asyncflow_warnings_as_lines():
        try:
            graph = flow_cls._af_graph()
            parameters_of(flow_cls)
            graph = decorate_graph(graph, merged_decospecs(args))  # `--with ... check` checks
            if args.command in ("show", "check"):  # the configs, read as a run reads them
                graph = read_for_show(flow_cls, graph, args)
            if args.command == "check":  # @conda/@pypi packages too, as a run would
                anyio.run(before_run, flow_cls, graph)
        except AsyncflowError as exc:
            return _fail(str(exc), 2)
        if args.command == "show":
            print(graph.to_mermaid() if args.mermaid else graph.to_text(), end="")
            if not args.mermaid:
                print("".join(f"{line}\n" for line in config_lines(flow_cls, args)), end="")
            return 0
        if args.command == "check":
            print(f"{graph.name} is valid: {len(graph)} steps.")
            print("".join(f"{line}\n" for line in config_lines(flow_cls, args)), end="")
            return 0
        if args.command == "resume":
            return _cmd_resume(flow_cls, args)
        return _cmd_run(flow_cls, args)
