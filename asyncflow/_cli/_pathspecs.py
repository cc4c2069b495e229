"""What the ``asyncflow`` commands share: the program's name, bad-input errors, pathspecs
(``Flow[/run[/step[/task]]]``) and the ``--store`` option. Every command module imports these
from here, so that ``_store_cmds`` (which registers the commands) imports them, and not the
other way round."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from .._client import Flow, Run, Step, Task

__all__ = ["PROG", "BadInput", "resolve", "split", "store_option_arg", "tasks_of"]

PROG = "asyncflow"


class BadInput(Exception):
    """The command line names something malformed; the message says what is expected."""


# ------------------------------------------------------------------------------


def split(pathspec: str, shapes: Sequence[int], expected: str) -> list[str]:
    parts = pathspec.strip().strip("/").split("/")
    if len(parts) not in shapes or not all(p.strip() for p in parts):
        raise BadInput(f"bad pathspec {pathspec!r}: expected {expected}")
    return [p.strip() for p in parts]


def resolve(parts: Sequence[str], store: str | None) -> Flow | Run | Step | Task:
    flow = Flow(parts[0], store)
    if len(parts) == 1:
        return flow
    run = flow[parts[1]]
    if len(parts) == 2:
        return run
    step = run[parts[2]]
    return step if len(parts) == 3 else step[parts[3]]


def tasks_of(target: Run | Step | Task) -> list[Task]:
    if isinstance(target, Task):
        return [target]
    if isinstance(target, Step):
        return list(target)
    return [task for step in target for task in step]


def store_option_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        metavar="PATH",
        default=None,
        help="the store file (default: $ASYNCFLOW_STORE, else the nearest asyncflow.db upward)",
    )
