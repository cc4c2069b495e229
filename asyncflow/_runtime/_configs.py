"""A run's Configs: where each value comes from, read once when the run starts.

For a new run, each Config takes, first found: a value given (``--config-value NAME JSON`` on
the command line, else ``FlowSpec(config={NAME: ...})``), a file given (``--config NAME
FILE``), its ``default`` file, its ``default_value``. Files are read in a worker thread. The
values are stored with the run as its parameters are (by name), so every task reads them and a
resume reuses them by hash, without reading any file again.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

import anyio.to_thread

from .._codecs import CodecError, Encoded, decode, encode
from .._errors import ParameterError, shown
from .._spec._config import Config, bind_configs, configs_of
from .._spec._config_read import parse_config
from .._spec._flowgraph import FlowGraph
from .._spec._override import apply_config_exprs, has_pending
from .._store._signing import PICKLE
from .._store._store import Store

__all__ = [
    "CONFIG_MAX_BYTES",
    "ConfigSources",
    "RunConfigs",
    "read_configs",
    "resume_configs",
    "with_configs",
]

CONFIG_MAX_BYTES = 16 << 20
"""The largest config file read (16 MiB): a config is settings, not data."""


@dataclass(frozen=True, slots=True)
class ConfigSources:
    """What a run was given for its configs, by config name (the defaults are the class's).

    :param values: a value (a dict, or JSON text) per name: ``config=`` or ``--config-value``.
    :param files: a file per name: ``--config NAME FILE``; a value of the same name wins.
    """

    values: Mapping[str, Any] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)

    def overridden(self, values: Mapping[str, Any], files: Mapping[str, str]) -> ConfigSources:
        """These sources with the command line's on top: a name given there (as a value or
        a file) drops what the object was given for it."""
        given = set(values) | set(files)
        kept = {k: v for k, v in self.values.items() if k not in given}
        return ConfigSources({**kept, **values}, dict(files))


@dataclass(frozen=True, slots=True)
class RunConfigs:
    """A run's configs: ``encoded`` attribute -> (name, stored form), as parameters are;
    ``reused`` name -> sha of values a resume takes from its origin; ``bound`` what a
    config_expr sees (name and attribute -> value)."""

    encoded: dict[str, tuple[str, Encoded]]
    reused: dict[str, tuple[str, bytes]]
    bound: dict[str, Any]


def _read_text(config: Config, path: str, flow: str, how: str) -> str:
    """A config file's text. Blocking: call it in a worker thread.

    Only a regular file is read: the path is checked, then the opened file again (the path
    may change in between); opening does not wait (a FIFO with no writer would block).
    """
    where = f"Config {config.name!r} of flow {flow}: cannot read {how} {path!r}"
    fix = f"pass an existing JSON file with --config {config.name} FILE"
    fd = -1
    try:
        _check_file(os.stat(path), where, fix, config)
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(path, flags | getattr(os, "O_NOCTTY", 0))
        _check_file(os.fstat(fd), where, fix, config)
        with os.fdopen(fd, "rb") as file:
            fd = -1  # closed by the file object
            data = file.read(CONFIG_MAX_BYTES + 1)
    except OSError as exc:
        raise ParameterError(f"{where} ({exc.strerror or exc}); {fix}.", config.name) from None
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > CONFIG_MAX_BYTES:  # it grew since fstat
        _too_big(where, len(data), config)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParameterError(
            f"{where}: it is not UTF-8 text ({exc.reason} at byte {exc.start}); {fix}.",
            config.name,
        ) from None


def _check_file(info: os.stat_result, where: str, fix: str, config: Config) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise ParameterError(f"{where}: it is not a regular file; {fix}.", config.name)
    if info.st_size > CONFIG_MAX_BYTES:
        _too_big(where, info.st_size, config)


def _too_big(where: str, size: int, config: Config) -> NoReturn:
    raise ParameterError(
        f"{where}: it holds {size} bytes, more than a config may ({CONFIG_MAX_BYTES}); keep "
        "data out of configs (use IncludeFile).",
        config.name,
    )


def _unknown(flow: str, names: list[str], configs: Mapping[str, Config]) -> ParameterError:
    have = ", ".join(c.name for c in configs.values()) or "none"
    return ParameterError(
        f"flow {flow} has no config {', '.join(map(shown, names))} (its configs: {have}); "
        "give --config/--config-value (or config=) only for the flow's Configs.",
        names[0],
    )


async def _value_of(config: Config, sources: ConfigSources, flow: str) -> Any:
    name = config.name
    if name in sources.values:
        return parse_config(config, sources.values[name], f"the value given for {name!r}", flow)
    if name in sources.files:
        path = os.path.abspath(sources.files[name])
        text = await anyio.to_thread.run_sync(_read_text, config, path, flow, "the file")
        return parse_config(config, text, f"the file {path!r}", flow)
    default = config.default_path()
    if default is not None and (config.default_value is None or os.path.exists(default)):
        text = await anyio.to_thread.run_sync(_read_text, config, default, flow, "its default file")
        return parse_config(config, text, f"its default file {default!r}", flow)
    if config.default_value is not None:
        return parse_config(config, config.default_value, "its default_value", flow)
    if config.required:
        raise ParameterError(
            f"flow {flow} requires Config {name!r} but got no value; pass --config {name} FILE, "
            f"--config-value {name} JSON, or FlowSpec(config={{{name!r}: ...}}).",
            name,
        )
    return None


def _encoded(config: Config, value: Any, flow: str) -> Encoded:
    try:
        return encode(value)
    except CodecError as exc:
        raise ParameterError(
            f"Config {config.name!r} of flow {flow}: its value cannot be stored ({exc}); have "
            "its parser return plain data (dicts, lists, strings, numbers).",
            config.name,
        ) from None


async def read_configs(flow_cls: type, flow: str, sources: ConfigSources) -> RunConfigs:
    """Choose and read the configs of a new run.

    :raises ParameterError: a name the flow has no config of; a file that cannot be read;
        text that is not JSON (or that its parser refuses), or not an object; no value for a
        required config.
    :raises FlowValidationError: the flow's configs are badly declared.
    """
    configs = configs_of(flow_cls)
    known = {c.name for c in configs.values()}
    if unknown := [n for n in (*sources.values, *sources.files) if n not in known]:
        raise _unknown(flow, list(dict.fromkeys(unknown)), configs)
    values: dict[str, Any] = {}
    encoded: dict[str, tuple[str, Encoded]] = {}
    for attr, config in configs.items():
        values[attr] = await _value_of(config, sources, flow)
        encoded[attr] = (config.name, _encoded(config, values[attr], flow))
    return RunConfigs(encoded, {}, bind_configs(values, configs))


def _stored_value(store: Store, sha: bytes, config: Config, flow: str) -> Any:
    """A config value stored with the origin (plain data only). Blocking."""
    raw = store.read_raw(sha)
    problem = None
    if raw.encoding == PICKLE or len(raw.payload) > CONFIG_MAX_BYTES:
        problem = "it is not plain data"
    else:
        try:
            return decode(raw.encoding, raw.meta, raw.payload)
        except CodecError as exc:
            problem = str(exc)
    raise ParameterError(
        f"Config {config.name!r} of flow {flow}: a config_expr needs the value stored with the "
        f"run being resumed, which cannot be read as plain data ({problem}); start a new run.",
        config.name,
    )


async def resume_configs(
    flow_cls: type,
    flow: str,
    origin: Mapping[str, bytes],
    store: Store,
    sources: ConfigSources,
    *,
    need_values: bool,
) -> RunConfigs:
    """The configs of a resumed run: the origin's, by sha (no file is read again); a config
    the origin lacks (declared since) is read as for a new run.

    :param origin: the origin's parameters and configs, name -> sha.
    :param need_values: decode the reused values too (for config_expr decorators).
    """
    configs = configs_of(flow_cls)
    values: dict[str, Any] = {}
    encoded: dict[str, tuple[str, Encoded]] = {}
    reused: dict[str, tuple[str, bytes]] = {}
    for attr, config in configs.items():
        sha = origin.get(config.name)
        if sha is None:
            try:
                values[attr] = await _value_of(config, sources, flow)
            except ParameterError as exc:  # what it says to pass, resume does not take
                why = str(exc).split("; pass", 1)[0].rstrip(".")
                raise ParameterError(
                    f"{why}. The run being resumed started before the flow declared Config "
                    f"{config.name!r}, so resume reads it as a new run would; but resume "
                    "takes no --config or --config-value: give the Config a default "
                    f"(default_value=...), pass it in code (MyFlow(config={{{config.name!r}: "
                    "...}).resume()), or start a new run (`run`).",
                    config.name,
                ) from None
            encoded[attr] = (config.name, _encoded(config, values[attr], flow))
            continue
        reused[attr] = (config.name, sha)
        if need_values:
            values[attr] = await anyio.to_thread.run_sync(_stored_value, store, sha, config, flow)
    return RunConfigs(encoded, reused, bind_configs(values, configs))


async def with_configs(
    flow_cls: type,
    graph: FlowGraph,
    sources: ConfigSources,
    origin: Mapping[str, bytes] | None = None,
    store: Store | None = None,
) -> tuple[FlowGraph, RunConfigs]:
    """A run's configs (a new run's, or with ``origin`` and ``store`` a resume's) and the
    run's graph with its config_expr decorators applied."""
    if origin is None or store is None:
        configs = await read_configs(flow_cls, graph.name, sources)
    else:
        need = has_pending(graph)
        configs = await resume_configs(
            flow_cls, graph.name, origin, store, sources, need_values=need
        )
    return apply_config_exprs(graph, configs.bound), configs
