"""``--config NAME FILE`` and ``--config-value NAME JSON`` on a flow file's command line.

As in Metaflow they come before the command (``python flow.py --config cfg dev.json run``);
asyncflow also takes them after ``run``, as it takes ``--store`` and ``--with`` there. Each
config is given once: two options for one config (any mix of the two, before or after the
command) are refused, as Metaflow refuses a config given both as a file and as a value. A
flow with a Parameter named ``config`` keeps ``run --config VALUE`` for that parameter: its
configs are then given before the command. ``resume`` takes none: a resumed run reuses the
configs of the run it resumes; nor do ``spin``, ``dump`` and ``logs``, which read a stored
run with the configs stored with it. ``show`` and ``check`` read the configs as a run would
and print them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Iterable
from typing import Any

import anyio

from .._runtime._configs import ConfigSources, with_configs
from .._spec._config import configs_of
from .._spec._flowgraph import FlowGraph
from ._format import one_line, printable, short_repr

__all__ = [
    "add_config_options",
    "config_lines",
    "config_option_problem",
    "config_options_given",
    "given_configs",
    "read_for_show",
    "with_cli_configs",
]

_FILE_HELP = "read Config NAME from this JSON file (repeatable)"
_VALUE_HELP = "give Config NAME this JSON value, e.g. '{\"lr\": 0.1}' (repeatable)"


def add_config_options(parser: argparse.ArgumentParser, *, prefix: str, file_too: bool) -> None:
    """Add the two options, storing into ``<prefix>config_files`` / ``<prefix>config_values``.

    :param file_too: add ``--config`` too (not where a Parameter named config has it).
    """
    if file_too:
        parser.add_argument(
            "--config",
            dest=f"{prefix}config_files",
            nargs=2,
            metavar=("NAME", "FILE"),
            action="append",
            default=[],
            help=_FILE_HELP,
        )
    parser.add_argument(
        "--config-value",
        dest=f"{prefix}config_values",
        nargs=2,
        metavar=("NAME", "JSON"),
        action="append",
        default=[],
        help=_VALUE_HELP,
    )


def _pairs(args: argparse.Namespace, dest: str) -> list[tuple[str, str]]:
    return [(pair[0], pair[1]) for pair in getattr(args, dest, None) or ()]


def _level(args: argparse.Namespace, prefix: str) -> dict[str, tuple[str, str]]:
    chosen = {name: ("file", path) for name, path in _pairs(args, f"{prefix}config_files")}
    for name, text in _pairs(args, f"{prefix}config_values"):  # a value wins over a file
        chosen[name] = ("value", text)
    return chosen


# Commands that read a stored run, with the configs stored with it.
_STORED_RUN_COMMANDS = {
    "spin": "spin runs the task again with the configs stored with its run",
    "dump": "dump reads a stored run, whose configs are stored with it",
    "logs": "logs reads what a stored run printed",
}


def _given_as_written(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """Each config option given: (name, option as written, where: before/after the command)."""
    out = []
    for prefix, where in (("top_", "before the command"), ("", "after it")):
        for name, _ in _pairs(args, f"{prefix}config_files"):
            out.append((name, f"--config {one_line(name)}", where))
        for name, _ in _pairs(args, f"{prefix}config_values"):
            out.append((name, f"--config-value {one_line(name)}", where))
    return out


def config_option_problem(args: argparse.Namespace) -> str | None:
    """Why the config options given cannot be used by this command, or None.

    Refused: any config option before ``spin``, ``dump`` or ``logs`` (they read a stored
    run, with its stored configs), and a config given twice (``resume`` refuses them all
    itself).
    """
    given = _given_as_written(args)
    if not given or args.command == "resume":
        return None
    if args.command in _STORED_RUN_COMMANDS:
        options = ", ".join(dict.fromkeys(option for _, option, _ in given))
        return (
            f"{_STORED_RUN_COMMANDS[args.command]}, so it takes no {options}; leave it out "
            "(configs are given to a new run: `run --config NAME FILE`)"
        )
    seen: dict[str, tuple[str, str]] = {}
    for name, option, where in given:
        if name in seen:
            first, first_where = seen[name]
            return (
                f"config {short_repr(name)} is given twice: {first} ({first_where}) and "
                f"{option} ({where}); give each config once, with --config NAME FILE or "
                "--config-value NAME JSON"
            )
        seen[name] = (option, where if where != "after it" else "after the command")
    return None


def given_configs(args: argparse.Namespace) -> tuple[dict[str, str], dict[str, str]]:
    """The command line's config values and files by name (each given once: see
    :func:`config_option_problem`)."""
    merged = {**_level(args, "top_"), **_level(args, "")}
    values = {name: text for name, (kind, text) in merged.items() if kind == "value"}
    files = {name: text for name, (kind, text) in merged.items() if kind == "file"}
    return values, files


def with_cli_configs(flow: Any, args: argparse.Namespace) -> None:
    """Put the command line's configs on top of what the flow object was given."""
    values, files = given_configs(args)
    if values or files:
        options = flow._af_options
        configs = options.configs.overridden(values, files)
        flow._af_options = dataclasses.replace(options, configs=configs)


def config_options_given(args: argparse.Namespace) -> list[str]:
    """The config options given at all, as written (for resume's refusal)."""
    out = []
    for prefix in ("top_", ""):
        out += [f"--config {n}" for n, _ in _pairs(args, f"{prefix}config_files")]
        out += [f"--config-value {n}" for n, _ in _pairs(args, f"{prefix}config_values")]
    return out


def read_for_show(flow_cls: type, graph: FlowGraph, args: argparse.Namespace) -> FlowGraph:
    """``show``/``check``: read the configs as a run would; the graph with config_expr
    decorators applied. Raises as a run would (ParameterError, FlowValidationError)."""
    values, files = given_configs(args)
    sources = ConfigSources(values, files)

    async def read() -> tuple[FlowGraph, Any]:
        return await with_configs(flow_cls, graph, sources)

    resolved, configs = anyio.run(read)
    args.config_shown = configs.bound
    return resolved


def config_lines(flow_cls: type, args: argparse.Namespace) -> Iterable[str]:
    """One line per config: its name and value, for ``show`` and ``check``."""
    bound = getattr(args, "config_shown", {})
    for config in configs_of(flow_cls).values():
        value = bound.get(config.name)
        # A parser may return what JSON cannot hold (a TOML date): shown by its repr().
        text = "None" if value is None else json.dumps(value.to_dict(), default=repr)
        if len(text) > 200:
            text = text[:197] + "..."
        yield printable(f"config {config.name}: {text}")
