"""``python flow.py spin STEP --run-id ID [--task N] [--archive FILE]``: run one stored task
again with the flow's current code, print what it set, write nothing (see ``_runtime._spin``).

Exit codes: 0 the task succeeded; 1 it failed (its error and traceback are printed); 2 wrong
input (no such run, step or task; a step of several tasks and no ``--task``), one line;
128 + the signal when Ctrl-C (130) or SIGTERM (143) stopped it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from .._errors import AsyncflowError
from .._store._paths import resolve_store_path
from ._format import printable, short_repr
from ._signals import SIGNAL_NAMES, run_under_signals
from ._stdout import settle_stdout, stdout_gone

if TYPE_CHECKING:
    from .._runtime._spin import SpinResult

__all__ = ["add_spin_command", "cmd_spin"]

# Values are shown cut to this many characters (the whole value: `dump`, or the result).
VALUE_WIDTH = 200
_MAIN = threading.main_thread()


def add_spin_command(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``spin`` to a flow file's subparsers."""
    spin = sub.add_parser(
        "spin",
        help="run one task of a stored run again with the current code; store nothing",
        description="Run one task of a stored run again, in this process, with the flow's "
        "current code for its step, from the inputs it had in that run (its parent tasks' "
        "artifacts, its foreach element, the run's parameters). Prints its output and the "
        "artifacts it set; the store (or archive) is left as it was.",
    )
    spin.add_argument("step", metavar="STEP", help="the step to run")
    spin.add_argument("--run-id", required=True, metavar="ID", help="the run to take it from")
    spin.add_argument(
        "--task",
        default=None,
        metavar="N",
        help="the task id (needed when the step has several tasks in that run)",
    )
    spin.add_argument(
        "--archive",
        default=None,
        metavar="FILE",
        help="read the run from this run archive (in place, not imported)",
    )
    spin.add_argument(
        "--trust",
        action="store_true",
        help="load the run's pickled values whoever signed them, if intact (an archive, or a "
        "store whose author you trust): unpickling runs code",
    )
    spin.add_argument("--store", default=None, metavar="PATH", help="the store file (as for run)")
    spin.add_argument("--quiet", action="store_true", help="do not print the task's output")


def _report(result: SpinResult, out: Any) -> None:
    print(printable(f"spun {result.pathspec} (nothing was stored)"), file=out)
    if result.artifacts:
        print("artifacts set:", file=out)
        for name, value in result.artifacts.items():
            print(printable(f"  {name} = {short_repr(value, VALUE_WIDTH)}"), file=out)
    else:
        print("artifacts set: (none)", file=out)
    if result.next:
        steps = ", ".join(result.next)
        print(printable(f"next: {steps} (recorded; a spin runs nothing after it)"), file=out)


def cmd_spin(flow_cls: Any, args: argparse.Namespace, store: str | None) -> int:
    """Run ``spin``; return the exit code."""
    from .._runtime._spin import spin_run_id, spin_task  # not imported by `run`

    name = flow_cls.__name__
    received: list[int] = []
    try:
        graph = flow_cls._af_graph()
        path = args.archive if args.archive is not None else resolve_store_path(store)
        run_id = spin_run_id(name, args.run_id)
        outcome = run_under_signals(
            lambda: spin_task(
                flow_cls,
                graph,
                path,
                run_id,
                args.step,
                args.task,
                echo=not args.quiet,
                trust=args.trust,
                archive=args.archive is not None,
            ),
            received,
        )
    except AsyncflowError as exc:
        outcome = exc
    if isinstance(outcome, AsyncflowError):
        print(printable(f"error: {outcome}"), file=sys.stderr)
        return 2
    if outcome is None:  # Ctrl-C or SIGTERM (or a KeyboardInterrupt on the loop)
        signum = received[0] if received else signal.SIGINT
        by = SIGNAL_NAMES.get(signum, str(signum))
        print(
            f"the spin of step {args.step!r} was stopped by {by}; nothing was stored",
            file=sys.stderr,
        )
        if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not _MAIN):
            # A plain step runs on in its thread, abandoned; the interpreter would wait
            # for it before exiting. Nothing of the spin is open for writing.
            settle_stdout()
            sys.stderr.flush()
            os._exit(128 + signum)
        return 128 + signum
    result = outcome
    settle_stdout()
    if result.error is not None:
        error = result.error
        print(
            printable(
                f"error: step {args.step!r} failed when spun from task {result.pathspec}: "
                f"{type(error).__name__}: {error} (nothing was stored)"
            ),
            file=sys.stderr,
        )
        if result.traceback:
            print(printable(result.traceback.rstrip("\n")), file=sys.stderr)
        return 1
    try:
        _report(result, sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:  # `spin ... | head`: the reader has all it wanted
        stdout_gone()
    return 0
