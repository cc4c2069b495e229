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
from .._runtime._run import ResumeRequest, RunResult
from .._spec._override import decorate_graph
from .._spec._resolve import parameters_of
from .._store._store import Store
from ._config_opts import (
    config_lines,
    config_option_problem,
    config_options_given,
    read_for_show,
    with_cli_configs,
)
from ._decospecs import merged_decospecs
from ._flow_extra import (
    REFUSED,
    asyncflow_warnings_as_lines,
    refused,
    run_store_command,
)
from ._flow_parser import build_flow_parser, merge_top_options
from ._format import printable
from ._live import choose_mode, run_shown
from ._run_id_file import run_id_file_problem, write_run_id
from ._signals import SIGNAL_NAMES, run_under_signals
from ._spin_cmd import cmd_spin
from ._stdout import say, settle_stdout

__all__ = ["flow_main"]


def _fail(message: str, code: int) -> int:
    print(f"error: {printable(message)}", file=sys.stderr)
    return code


_MAIN = threading.main_thread()


def _execute(
    flow: Any, start: Callable[[Callable[[int], None]], Awaitable[Any]], args: argparse.Namespace
) -> Any:
    """Run ``start(on_start)`` under signal handling; its result, an AsyncflowError, or an exit
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

    async def execute(on_start: Callable[[int], None] | None, hub: Any) -> RunResult:
        # The run's record, not the client's Run: a run that succeeds never imports the
        # client. A failed one raises the StepFailed the API raises (with its Run).
        result: RunResult = await flow._af_run_result(given, request, on_start, events=hub)
        if result.failure is not None:
            flow._af_outcome(result)
        return result

    outcome = _execute(
        flow,
        lambda on_start: run_shown(lambda hub: execute(on_start, hub), graph, mode),
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
    row = outcome.row
    if request is not None:
        where = f"resumed {row.flow}/{row.origin_run_id}; {where}"
    say(f"Run {row.flow}/{row.id} succeeded in {took:.2f} s ({where})")
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
    parser = build_flow_parser(flow_cls)
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
    merge_top_options(args)
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
