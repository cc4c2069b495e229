"""``asyncflow events`` and ``asyncflow logs``: a run's stored events and its tasks' output,
each optionally followed while another process runs it (``--follow``).

Following reads the store (``run.aevents(follow=True)``: it polls a cheap change counter)
until the run's ``RunFinished``, or until the run is found crashed. ``logs --follow`` first
prints the output stored with the tasks that had finished, then the ``LogLine`` events of
the others, those stored so far and those that come: no line twice, none left out but
what the event stream itself leaves out (past 1,000 lines at once and 100 a second per task
and stream, a note stands for the lines not streamed; ``logs`` after the run shows all).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Iterable

from .._client import Flow, Run, Task
from .._errors import NotFoundError, store_option
from .._store._events import (
    Event,
    LogLine,
    RunFinished,
    RunStarted,
    StepProgress,
    TaskFinished,
    TaskRetrying,
    TaskStarted,
)
from .._store._paths import resolve_store_path
from ._format import indent_lines, printable
from ._parser import add_logs_options
from ._pathspecs import PROG
from ._pathspecs import resolve as _resolve
from ._pathspecs import split as _split
from ._pathspecs import store_option_arg as _store_option
from ._pathspecs import tasks_of as _tasks_of
from ._signals import Noted, run_noted, signals_noted

__all__ = ["add_watch_commands", "cmd_logs", "event_text"]


# --- events ---------------------------------------------------------------------------------


def event_text(ev: Event) -> str:
    """One event on one line: ``seq  time  kind  where  details`` (printable)."""
    at = ev.at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    if isinstance(ev, RunStarted):
        where = f"{ev.flow}/{ev.run_id}"
        detail = "" if ev.origin_run_id is None else f"resumes run {ev.origin_run_id}"
    elif isinstance(ev, TaskStarted):
        where, detail = ev.pathspec, f"attempt {ev.attempt}"
        if ev.index is not None:
            detail += f" index {ev.index}"
    elif isinstance(ev, TaskFinished):
        where = ev.pathspec
        detail = f"{ev.status} in {ev.duration:.3f}s attempt {ev.attempt}"
        if ev.artifacts:
            detail += " set " + ", ".join(ev.artifacts)
    elif isinstance(ev, TaskRetrying):
        where = ev.pathspec
        detail = f"attempt {ev.attempt} failed: {ev.error}; next in {ev.delay:g}s"
    elif isinstance(ev, LogLine):
        where, detail = ev.pathspec, f"{ev.stream}: {ev.text}"
    elif isinstance(ev, StepProgress):
        where, detail = ev.step, f"{ev.done}/{ev.total} done, {ev.failed} failed"
    elif isinstance(ev, RunFinished):
        where, detail = ev.run, ev.status + ("" if ev.error is None else f": {ev.error}")
    else:  # pragma: no cover - every kind is above
        where, detail = "", ""
    # One line: a stored text's newlines are shown escaped, as the other controls are.
    text = f"{ev.seq:>6}  {at}  {ev.kind:<13}  {where}  {detail}".rstrip()
    return printable(text.replace("\n", "\\n").replace("\t", "\\t"))


def _event_line(ev: Event, as_json: bool) -> str:
    # JSON escapes every control character itself (ensure_ascii: lone surrogates too).
    return json.dumps(ev.to_dict()) if as_json else event_text(ev)


def _cmd_events(args: argparse.Namespace) -> int:
    if not args.follow:
        return _events(args, Noted())
    with signals_noted() as noted:
        code = _events(args, noted)
        return noted.code or code


def _events(args: argparse.Namespace, noted: Noted) -> int:
    parts = _split(args.pathspec, (2,), "Flow/run")
    run = _resolve(parts, args.store)
    assert isinstance(run, Run)
    printed: list[Event] = []
    if not args.follow:
        printed = run.events()
        for ev in printed:
            print(_event_line(ev, args.json))
    else:

        async def follow() -> None:
            async for ev in run.aevents(follow=True):
                print(_event_line(ev, args.json), flush=True)
                printed.append(ev)

        code = run_noted(follow, noted) or _followed_to_a_crash(run, args.store)
        if code:
            return code
    if not printed:
        # A run that ended with none stored ran before asyncflow kept events.
        print(
            printable(
                f"{PROG}: {run.pathspec} recorded no events: it ran before asyncflow kept "
                f"events (`{PROG} show {run.pathspec}` and `{PROG} logs` read it)"
            ),
            file=sys.stderr,
        )
    return 0


def _followed_to_a_crash(run: Run, store: str | None) -> int:
    """After a follow ends: 1, with a line on stderr, when it ended because the run's process
    is gone (the run crashed; its last events are printed), else 0."""
    now = run.refresh()
    if now.status != "crashed":
        return 0
    script = shlex.quote(now.source_path or "flow.py")
    path = store_option(resolve_store_path(store))
    sys.stdout.flush()
    print(
        f"{PROG}: run {now.pathspec} ended without its RunFinished: {now.error}. Resume it "
        f"with `python {script} resume --origin-run-id {now.id}{path}`",
        file=sys.stderr,
    )
    return 1


# --- logs -----------------------------------------------------------------------------------


def _write(text: str, err: bool) -> None:
    if err:
        sys.stdout.flush()
        sys.stderr.write(printable(text))
        sys.stderr.flush()
    else:
        sys.stdout.write(printable(text))


def _print_stored(tasks: Iterable[Task], args: argparse.Namespace, prefixed: bool) -> bool:
    wrote = False
    for task in tasks:
        prefix = f"[{task.pathspec}] " if prefixed else ""
        for which, text in (("stdout", task.stdout), ("stderr", task.stderr)):
            if text and not getattr(args, "stderr" if which == "stdout" else "stdout"):
                _write(indent_lines(text, prefix) if prefix else text, which == "stderr")
                wrote = True
    return wrote


def cmd_logs(args: argparse.Namespace) -> int:
    """``asyncflow logs Flow/run[/step[/task]] [--stdout | --stderr] [--follow]``."""
    parts = _split(args.pathspec, (2, 3, 4), "Flow/run[/step[/task]]")
    # One task: its output as written. Several: each line prefixed with its task's pathspec.
    single = len(parts) == 4
    if getattr(args, "follow", False):
        with signals_noted() as noted:
            code = _follow_logs(parts, args, single, noted)
            return noted.code or code
    target = _resolve(parts, args.store)
    assert not isinstance(target, Flow)
    if not _print_stored(_tasks_of(target), args, not single):
        which = "stdout" if args.stdout else "stderr" if args.stderr else "output"
        print(printable(f"{PROG}: {args.pathspec} recorded no {which}"), file=sys.stderr)
    return 0


def _target(parts: list[str], run: Run, store: str | None) -> list[Task]:
    """The tasks of ``parts`` stored so far: none yet for a step of the run's graph that
    has not started (or a task not made yet) while the run runs."""
    try:
        target = _resolve(parts, store)
    except NotFoundError:
        steps = [s.get("name") for s in run.graph.get("steps", ()) if isinstance(s, dict)]
        if run.finished or parts[2] not in steps:
            raise
        return []
    assert not isinstance(target, Flow)
    return _tasks_of(target)


def _follow_logs(parts: list[str], args: argparse.Namespace, single: bool, noted: Noted) -> int:
    run = _resolve(parts[:2], args.store)
    assert isinstance(run, Run)
    spec = "/".join(parts)
    target = _target(parts, run, args.store)
    seen = run.events()  # first the events, then the tasks: a task finished by the last
    last = seen[-1].seq if seen else 0  # of these has its whole output stored with it
    finished = {ev.pathspec for ev in seen if isinstance(ev, TaskFinished)}
    ended = any(isinstance(ev, RunFinished) for ev in seen) or run.finished
    _print_stored((t for t in target if ended or t.pathspec in finished), args, not single)
    if noted.signals:
        return 0
    if ended:
        return _followed_to_a_crash(run, args.store)
    mine = spec if single else spec + "/"

    def show(ev: Event) -> None:
        if not isinstance(ev, LogLine) or ev.pathspec in finished:
            return
        if not (ev.pathspec == mine or ev.pathspec.startswith(mine)):
            return
        if (args.stdout and ev.stream != "stdout") or (args.stderr and ev.stream != "stderr"):
            return
        prefix = "" if single else f"[{ev.pathspec}] "
        _write(f"{prefix}{ev.text}\n", ev.stream == "stderr")
        sys.stdout.flush()

    for ev in seen:
        show(ev)

    async def follow() -> None:
        async for ev in run.aevents(follow=True):
            if ev.seq > last:
                show(ev)

    return run_noted(follow, noted) or _followed_to_a_crash(run, args.store)


# --- the parser -------------------------------------------------------------------------------


def add_watch_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``logs`` and ``events`` to the ``asyncflow`` command's subparsers."""
    logs = sub.add_parser("logs", help="print what tasks wrote to stdout and stderr")
    logs.add_argument("pathspec", metavar="PATHSPEC", help="Flow/run[/step[/task]]")
    _store_option(logs)
    add_logs_options(logs)
    logs.set_defaults(handler=cmd_logs)

    events = sub.add_parser("events", help="print a run's events, one a line")
    events.add_argument("pathspec", metavar="PATHSPEC", help="Flow/run")
    _store_option(events)
    events.add_argument(
        "--follow", action="store_true", help="then follow the running run until it ends"
    )
    events.add_argument("--json", action="store_true", help="one JSON object a line")
    events.set_defaults(handler=_cmd_events)
