"""``Config``, ``ConfigValue`` and ``config_expr``: a flow's configuration, as in Metaflow.

A Config is declared in the class body (``cfg = Config("cfg", default="cfg.json")``). Its
value is a JSON object (or what ``parser=`` makes of the text), chosen once when a run starts
(:mod:`.._runtime._configs` reads it), stored with the run like a parameter, and read in every
step as a read-only :class:`ConfigValue` (``self.cfg.lr``, ``self.cfg["lr"]``). Decorator
arguments may refer to it with ``config_expr("cfg.retries")`` (or ``cfg.retries`` in the class
body): such a decorator is kept pending on its step (:mod:`._config_deco`) and applied to the
run's own graph when the run's configs are known; the class never changes.
"""

from __future__ import annotations

import builtins
import importlib
import os
from collections.abc import Callable, Mapping
from typing import Any, NoReturn, Self, cast, overload

from .._errors import FlowValidationError, ParameterError
from ._names import RESERVED_NAMES, is_plain_name
from ._step import step_info

__all__ = [
    "Config",
    "ConfigExpr",
    "ConfigValue",
    "bind_configs",
    "check_new_flow_class",
    "config_expr",
    "configs_of",
]


class ConfigValue(dict[str, Any]):
    """A config's value: a read-only dict whose keys are also attributes (``cfg.lr``).

    Nested objects are ConfigValues too and lists become tuples, so nothing in it can be
    changed. ``to_dict()`` gives a plain, changeable copy. Pickled, it is a plain dict. A key
    named like a method (``items``, ``keys``, ``get``, ``to_dict``) is read with brackets,
    ``cfg["items"]``: the attribute is the method, as in Metaflow.
    """

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        super().__init__({str(k): _frozen(v) for k, v in (data or {}).items()})

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        try:
            return self[key]
        except KeyError:
            keys = ", ".join(map(repr, self)) or "none"
            raise AttributeError(
                f"this config has no key {key!r} (its keys: {keys}); read an optional key "
                f"with .get({key!r})",
                name=key,
                obj=self,
            ) from None

    def _refuse(self, *_: Any, **__: Any) -> NoReturn:
        raise TypeError(
            "a Config is read-only for the whole run; copy it with .to_dict() and change the "
            "copy (store it under another name to keep it)"
        )

    def __setattr__(self, key: str, value: Any) -> NoReturn:
        self._refuse()

    def __delattr__(self, key: str) -> NoReturn:
        self._refuse()

    __setitem__ = __delitem__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __ior__(self, other: Any) -> NoReturn:  # type: ignore[misc]
        self._refuse()

    def to_dict(self) -> dict[str, Any]:
        """A plain copy (dicts and lists all the way down) that may be changed."""
        return cast(dict[str, Any], _thawed(self))

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (self.to_dict(),))

    def __repr__(self) -> str:
        return repr(self.to_dict())  # printed as the JSON object it was read from


def _frozen(value: Any) -> Any:
    if isinstance(value, ConfigValue):
        return value
    if isinstance(value, Mapping):
        return ConfigValue(value)
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


def _thawed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _thawed(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thawed(v) for v in value]
    return value


class ConfigExpr:
    """``config_expr("cfg.retries")``: a Python expression over the flow's configs, evaluated
    when a run starts (decorator arguments) rather than when the class is defined."""

    def __init__(self, text: str) -> None:
        if not isinstance(text, str) or not text.strip():
            raise FlowValidationError(
                f"config_expr({text!r}): give the expression as text, such as "
                "config_expr('cfg.retries')."
            )
        try:
            self._code = compile(text.strip(), "<config_expr>", "eval")
        except SyntaxError as exc:
            raise FlowValidationError(
                f"config_expr({text!r}) is not a Python expression ({exc.msg}); write it as "
                "you would in a step, such as 'cfg.retries' or \"cfg['retries'] + 1\"."
            ) from None
        self.text = text.strip()
        self.names = frozenset(self._code.co_names)

    def evaluate(self, configs: Mapping[str, ConfigValue]) -> Any:
        """The expression's value with each config's name bound to its value.

        :raises ParameterError: the expression fails (a key the config lacks, say).
        """
        try:
            # The flow author's own expression (a decorator argument of their class).
            return eval(self._code, {}, dict(configs))
        except Exception as exc:
            known = ", ".join(sorted(configs)) or "none"
            raise ParameterError(
                f"config_expr({self.text!r}) failed with this run's configs: "
                f"{type(exc).__name__}: {exc} (configs: {known}); fix the expression or "
                "give a config that has what it reads."
            ) from None

    def __repr__(self) -> str:
        return f"config_expr({self.text!r})"


def config_expr(expr: str) -> Any:
    """A decorator argument read from the flow's configs when a run starts, as in Metaflow:
    ``@retry(times=config_expr("cfg.retries"))``. ``expr`` is a Python expression in which
    each Config of the flow is a name (``"cfg.lr * 2"``, ``"cfg['a']['b']"``).

    :raises FlowValidationError: ``expr`` is not a Python expression.
    """
    return ConfigExpr(expr)


class _ConfigHost:
    def _af_parameter_value(self, attr: str) -> Any: ...


class Config:
    """A flow's configuration: a JSON object chosen once per run, read-only in every step.

    Where the value comes from, first found wins: ``--config-value NAME JSON``, then
    ``--config NAME FILE`` on the command line; ``FlowSpec(config={NAME: value})``; the file
    ``default``; ``default_value``.

    :param name: what users pass (``--config NAME FILE``, ``config={NAME: ...}``).
    :param default: path of a JSON file read when no value is given; a relative path is
        relative to the folder of the file that defines the flow (the current directory for a
        flow defined in a notebook or with ``python -c``).
    :param default_value: the value when nothing else gives one (a dict, or JSON text); also
        used when the ``default`` file does not exist.
    :param help: one line for the command line's help.
    :param required: refuse a run that gets no value at all.
    :param parser: turns the text into a dict instead of JSON: a function, or the dotted name
        of one (``"tomllib.loads"``).
    :raises FlowValidationError: a name that is not an identifier, a default that is not a
        path, a default_value that is not a dict or JSON text, or a parser that is neither.
    """

    def __init__(
        self,
        name: str,
        default: str | os.PathLike[str] | None = None,
        default_value: Mapping[str, Any] | str | None = None,
        help: str | None = None,
        required: bool = False,
        parser: str | Callable[[str], Any] | None = None,
    ) -> None:
        problem = None
        if not is_plain_name(name) or name.startswith("_"):
            problem = "is not a Python identifier (not starting with '_'); rename it"
        elif name in RESERVED_NAMES:
            problem = "is a name FlowSpec uses; rename it"
        elif default is not None and not isinstance(default, str | os.PathLike):
            problem = f"has default={default!r}; default is the path of a JSON file"
        elif default_value is not None and not isinstance(default_value, Mapping | str):
            problem = f"has default_value={default_value!r}; pass a dict or JSON text"
        elif parser is not None and not (callable(parser) or isinstance(parser, str)):
            problem = f"has parser={parser!r}; pass a function or its dotted name"
        if problem:
            raise FlowValidationError(f"Config {name!r} {problem}.")
        self.name = name
        self.attr = ""
        self.default = None if default is None else os.fspath(default)
        self.default_value = default_value
        self.help = help
        self.required = bool(required)
        self.parser = parser
        self.owner_file: str | None = None  # the file of the class that declares it

    def __repr__(self) -> str:
        return f"Config({self.name!r}, default={self.default!r})"

    def __set_name__(self, owner: builtins.type, name: str) -> None:
        if not self.attr:
            self.attr = name
            module = importlib.import_module(owner.__module__) if owner.__module__ else None
            file = getattr(module, "__file__", None)
            self.owner_file = os.path.abspath(file) if isinstance(file, str) else None

    def __getattr__(self, key: str) -> ConfigExpr:
        # ``cfg.retries`` in the class body (Metaflow's style), read when the run starts.
        name = self.__dict__.get("name")
        if key.startswith("_") or not name:
            raise AttributeError(key)
        return ConfigExpr(f"{name}.{key}")

    def __getitem__(self, key: str) -> ConfigExpr:
        return ConfigExpr(f"{self.name}[{key!r}]")

    @overload
    def __get__(self, instance: None, owner: builtins.type | None = None) -> Self: ...
    @overload
    def __get__(self, instance: object, owner: builtins.type | None = None) -> Any: ...
    def __get__(self, instance: object | None, owner: builtins.type | None = None) -> Any:
        if instance is None:
            return self
        cache = f"_af_config_{self.attr}"
        found = instance.__dict__.get(cache)
        if found is None:
            raw = cast(_ConfigHost, instance)._af_parameter_value(self.attr)
            found = ConfigValue(raw) if isinstance(raw, Mapping) else raw
            instance.__dict__[cache] = found
        return found

    def __set__(self, instance: object, value: Any) -> NoReturn:
        raise AttributeError(
            f"Config {self.name!r} of flow {type(instance).__name__} is read-only for the "
            f"whole run; store a changed copy under another name, such as "
            f"self.{self.attr}_used = self.{self.attr}.to_dict().",
            name=self.attr,
            obj=instance,
        )

    def __delete__(self, instance: object) -> NoReturn:
        self.__set__(instance, None)

    def default_path(self) -> str | None:
        """The ``default`` file as an absolute path (see the class doc), or None."""
        if self.default is None:
            return None
        if os.path.isabs(self.default) or self.owner_file is None:
            return os.path.abspath(self.default)
        return os.path.join(os.path.dirname(self.owner_file), self.default)

    def describe(self) -> dict[str, Any]:
        """A JSON-able description, for ``show`` and ``--help``."""
        return {
            "name": self.name,
            "attr": self.attr,
            "kind": "config",
            "default": self.default,
            "help": self.help,
            "required": self.required,
        }


def configs_of(flow_cls: builtins.type) -> dict[str, Config]:
    """The Configs of a flow class by attribute (base classes' first).

    :raises FlowValidationError: two configs share a name, or a config has the name of a
        parameter or a step of the flow.
    """
    found: dict[str, Config] = {}
    for klass in reversed(flow_cls.__mro__):
        for attr, value in vars(klass).items():
            if isinstance(value, Config):
                found[attr] = value
            else:
                found.pop(attr, None)
    if found:
        _check_names(flow_cls, found)
    return found


def _check_names(flow_cls: builtins.type, configs: Mapping[str, Config]) -> None:
    from ._params import Parameter  # a sibling module, imported late: it is large

    taken: dict[str, str] = {}
    for klass in reversed(flow_cls.__mro__):
        for attr, value in vars(klass).items():
            if isinstance(value, Parameter):
                taken[value.name] = f"the parameter at {attr}"
                taken.setdefault(attr, f"the parameter {value.name!r}")
            elif step_info(value) is not None:
                taken[attr] = "a step"
    named: dict[str, str] = {}
    for attr, config in configs.items():
        problem = None
        for word in (config.name, attr):
            if word in taken:
                problem = f"has the name {word!r} of {taken[word]} of {flow_cls.__name__}"
        if config.name in named:
            problem = f"has the name of the config at {named[config.name]}"
        elif config.name != attr and config.name in configs:
            problem = f"is named like the attribute of another config ({config.name})"
        if config.attr != attr:
            problem = "is one Config object bound to two attributes; make one per attribute"
        if problem:
            raise FlowValidationError(
                f"Config {config.name!r} at {flow_cls.__name__}.{attr} {problem}; rename one "
                "(configs, parameters and steps share the flow's names)."
            )
        named[config.name] = attr


def check_new_flow_class(flow_cls: builtins.type) -> None:
    """Refuse, when a flow class is defined, a Config clashing with a parameter or step."""
    if any(isinstance(v, Config) for k in flow_cls.__mro__ for v in vars(k).values()):
        configs_of(flow_cls)


def bind_configs(values: Mapping[str, Any], configs: Mapping[str, Config]) -> dict[str, Any]:
    """What a config_expr sees: each config's value under its attribute (and its name)."""
    out: dict[str, Any] = {}
    for attr, config in configs.items():
        value = values.get(attr)
        wrapped = ConfigValue(value) if isinstance(value, Mapping) else value
        out.setdefault(config.name, wrapped)
        out[attr] = wrapped
    return out
