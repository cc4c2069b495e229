"""``--with NAME[:k=v,k=v]`` on a flow file's command line, as Metaflow writes it.

``python flow.py run --with retry`` and ``python flow.py --with kubernetes:cpu=2 run`` both
add the decorator to every step that does not have it (Metaflow's rule; the run's own graph
gets it, the class is untouched, see ``_spec._override``). Several ``--with`` add up; those
after the command come first, as in Metaflow. A value is read as JSON when it is JSON
(``times=2``, ``vars={"K": "v"}``, ``print_exception=false``), else as a whole number, a
number, or the text itself. Arguments are split at each comma followed by ``name=``, so a
JSON value may hold commas.
"""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

from .._spec._override import STEP_DECORATORS, DecoSpec

__all__ = ["WITH_HELP", "merged_decospecs", "parse_decospec"]

WITH_HELP = (
    "add a decorator to every step that lacks it, e.g. retry, timeout:seconds=60, "
    'resources:cpu=2,memory=8192, environment:vars={"K":"v"}, kubernetes (repeatable)'
)

_SPLIT = re.compile(r",(?=[\s\w]+=)")
_NAME = re.compile(r"[A-Za-z_]\w*")


def _value(text: str) -> Any:
    text = text.strip()
    try:
        return json.loads(text.replace('\\"', '"'))  # a shell's \" as Metaflow reads it
    except ValueError:
        pass
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_decospec(text: str) -> DecoSpec:
    """One ``--with`` value as a :class:`DecoSpec` (an argparse ``type=``).

    :raises argparse.ArgumentTypeError: an unknown decorator, or an argument not ``k=v``.
    """
    name, _, rest = text.partition(":")
    name = name.strip()
    if name not in STEP_DECORATORS:
        raise argparse.ArgumentTypeError(
            f"unknown decorator {name!r} in {text!r}; --with takes one of "
            f"{', '.join(STEP_DECORATORS)}, as NAME or NAME:key=value,key=value"
        )
    kwargs: dict[str, Any] = {}
    if rest.strip():
        for part in _SPLIT.split(rest):
            key, eq, value = part.partition("=")
            key = key.strip()
            if not eq or not _NAME.fullmatch(key):
                raise argparse.ArgumentTypeError(
                    f"{part.strip()!r} in {text!r} is not key=value; write "
                    f"--with {name}:key=value,key=value"
                )
            kwargs[key] = _value(value)
    return DecoSpec(name, kwargs, text)


def merged_decospecs(args: argparse.Namespace) -> tuple[DecoSpec, ...]:
    """The ``--with`` of a run: those after the command, then those before it."""
    return tuple(getattr(args, "decospecs", None) or ()) + tuple(args.top_decospecs or ())
