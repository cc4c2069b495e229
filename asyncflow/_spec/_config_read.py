"""Reading a Config's value from text (a file, ``--config-value``) or from a dict given in
code: JSON read strictly (no NaN or Infinity, no key twice in one object) or by the config's
``parser=``; the value must be an object whose keys are all strings, so that what steps read
(a :class:`~._config.ConfigValue`) is what is stored.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping
from typing import Any, NoReturn, cast

from .._errors import ParameterError
from ._config import Config

__all__ = ["parse_config"]


def _parser_of(config: Config) -> Callable[[str], Any]:
    parser = config.parser
    if parser is None:
        return json.loads
    if callable(parser):
        return parser
    module, _, func = parser.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), func) if module else None
    except (ImportError, AttributeError):
        found = None
    if not callable(found):
        raise ParameterError(
            f"Config {config.name!r}: parser={parser!r} names no function that can be "
            "imported here; give a function, or the dotted name of one such as 'tomllib.loads'.",
            config.name,
        )
    return cast(Callable[[str], Any], found)


def _shown(value: object, width: int = 60) -> str:
    """``repr(value)``, cut to about ``width`` characters (a key may be huge)."""
    text = repr(value)
    return text if len(text) <= width else f"{text[: width - 3]}... ({len(text)} characters)"


class _NotJson(ValueError):
    """Text the json module reads but JSON does not allow: NaN, Infinity, a repeated key."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def _no_constant(token: str) -> NoReturn:
    raise _NotJson(
        f"it holds {token}, which JSON has no number for (write null or a string instead)"
    )


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _NotJson(
                f"it has the key {_shown(key)} twice in one object (JSON readers differ on "
                "which one counts)"
            )
        found[key] = value
    return found


def _strict_json(text: str) -> Any:
    """``json.loads``, refusing NaN, Infinity and an object with a repeated key."""
    return json.loads(text, parse_constant=_no_constant, object_pairs_hook=_unique_keys)


def _non_str_key(value: Any, name: str) -> tuple[object, str] | None:
    """The first key that is no str in ``value`` (nested dicts and lists too), with where it
    is (``cfg['a'][0]``); None when every key is a str."""
    todo: list[tuple[Any, str]] = [(value, name)]
    while todo:
        item, path = todo.pop()
        if isinstance(item, Mapping):
            for key, inner in item.items():
                if not isinstance(key, str):
                    return key, path
                todo.append((inner, f"{path}[{_shown(key, 40)}]"))
        elif isinstance(item, list | tuple):
            todo.extend((inner, f"{path}[{i}]") for i, inner in enumerate(item))
    return None


def _check_keys(config: Config, value: Any, what: str, where: str) -> None:
    found = _non_str_key(value, config.name)
    if found is None:
        return
    key, path = found
    raise ParameterError(
        f"{what}: {where} has the key {_shown(key)} ({type(key).__name__}) in {path}; a "
        f"config is JSON, whose keys are strings: write the key as {_shown(str(key))}.",
        config.name,
    )


def parse_config(config: Config, text: str | Mapping[str, Any], where: str, flow: str) -> Any:
    """The value of ``config`` from ``text`` (read from ``where``: a file, an option).

    A Mapping is taken as it is (after a JSON round trip check). JSON text is read strictly:
    NaN, Infinity and a key repeated in one object are refused. Every key, at any depth,
    must be a str, so that what steps read (``ConfigValue``) is what is stored.

    :raises ParameterError: not JSON (or refused by the parser), or not an object, or a key
        that is not a str.
    """
    what = f"Config {config.name!r} of flow {flow}"
    if isinstance(text, Mapping):
        value: Any = text
        try:
            json.dumps(value)
        except (TypeError, ValueError, RecursionError) as exc:
            raise ParameterError(
                f"{what}: the value from {where} cannot be written as JSON ({exc}); pass "
                "only dicts, lists, strings, numbers, booleans and None.",
                config.name,
            ) from None
    else:
        parser = _parser_of(config) if config.parser is not None else _strict_json
        try:
            value = parser(text)
        except _NotJson as exc:
            raise ParameterError(
                f"{what}: {where} is not valid JSON: {exc.problem}; fix it, or give another "
                f"with --config {config.name} FILE or --config-value {config.name} '{{...}}'.",
                config.name,
            ) from None
        except json.JSONDecodeError as exc:
            raise ParameterError(
                f"{what}: {where} is not valid JSON ({exc.msg} at line {exc.lineno}, column "
                f"{exc.colno}); fix it, or give another with --config {config.name} FILE or "
                f"--config-value {config.name} '{{...}}'.",
                config.name,
            ) from None
        except Exception as exc:
            raise ParameterError(
                f"{what}: {where} could not be read by its parser ({type(exc).__name__}: "
                f"{exc}); fix it, or give another value.",
                config.name,
            ) from None
    if not isinstance(value, Mapping):
        raise ParameterError(
            f"{what}: {where} holds {type(value).__name__}, not a JSON object; a config is "
            'an object such as {"lr": 0.1}.',
            config.name,
        )
    _check_keys(config, value, what, where)
    return dict(value)
