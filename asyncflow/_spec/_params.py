"""Flow parameters: ``Parameter``, ``IncludeFile``, ``JSONType`` and how one value converts.

A parameter is declared in a flow's class body and is a read-only artifact in every step.
Each parameter converts what the user gave (a Python value or a command-line string) to its
type; :mod:`._resolve` finds a flow's parameters and resolves a run's values. Pure: the
runtime reads the files of IncludeFiles itself and hands the bytes to
:meth:`IncludeFile.decode_content`.
"""

from __future__ import annotations

import builtins
import codecs
import json
import math
import numbers
import os
import reprlib
import sys
from collections.abc import Callable
from typing import Any, Protocol, Self, cast, overload

from .._errors import FlowValidationError, ParameterError

__all__ = [
    "INCLUDE_MAX_BYTES",
    "IncludeFile",
    "JSONType",
    "Parameter",
]

INCLUDE_MAX_BYTES = 256 << 20
"""The default ``max_bytes`` of an :class:`IncludeFile`: 256 MiB."""
_TOO_DEEP = "is nested too deeply to read as JSON (deeper than Python's recursion limit)"
_TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
_BOOL_WORDS = _TRUE_WORDS | {"false", "0", "no", "off"}


class JSONType:
    """Marker for ``type=JSONType``: strings are parsed as JSON; Python values are kept."""


class _ParameterHost(Protocol):
    def _af_parameter_value(self, attr: str) -> Any: ...


class _Bad(Exception):
    """A conversion failed; ``args`` are (what is wrong with the value, what to do)."""


def _show(value: Any) -> str:
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # an int too long for decimal, nesting too deep
        shortener = reprlib.Repr()
        shortener.maxlevel = 3
        try:
            text = shortener.repr(value)
        except ValueError:
            text = f"<{_kind_of(value)} too long to show>"
    return text if len(text) <= 80 else text[:77] + "..."


def _too_long(exc: ValueError) -> _Bad | None:
    """The problem of a number too long for Python to read, or None for other errors."""
    if "integer string conversion" not in str(exc):
        return None
    limit = sys.get_int_max_str_digits()
    return _Bad(
        f"holds a whole number of more than {limit} digits, more than Python reads from text",
        "pass it as a string (type=str, or in quotes inside JSON) and convert it in the step",
    )


def _kind_of(value: Any) -> str:
    return builtins.type(value).__name__


def _hint(kind: Any) -> str:
    if kind is bool:
        return "pass True or False"
    if kind is int:
        return "pass a whole number such as 3"
    return "pass a string" if kind is str else "pass a number such as 0.5"


def _parse(kind: Any, text: str) -> Any:
    if kind is bool:
        if (word := text.strip().lower()) in _BOOL_WORDS:
            return word in _TRUE_WORDS
        raise _Bad("is not a boolean word", "use true/false, 1/0, yes/no or on/off")
    try:
        return kind(text)
    except ValueError as exc:
        if (too_long := _too_long(exc)) is not None:
            raise too_long from exc
        if kind is float:
            raise _Bad("is not a number", _hint(float)) from None
    try:
        number = float(text)  # to tell why it is not an int
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise _Bad("is not a whole number", _hint(int))
    fix = f"write {int(number)} in digits" if number.is_integer() else "pass a whole number"
    why = "is scientific notation, a float" if "e" in text.lower() else "has a decimal point"
    raise _Bad(f"{why}, not an int", f"{fix} or declare type=float")


def _to_json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            where = f"{exc.msg} at line {exc.lineno}, column {exc.colno}"
            raise _Bad(f"is not valid JSON ({where})", """pass JSON such as '{"k": 1}'""") from exc
        except RecursionError as exc:
            raise _Bad(_TOO_DEEP, "pass JSON nested a few hundred levels at most") from exc
        except ValueError as exc:
            raise (_too_long(exc) or _Bad(f"is not valid JSON ({exc})", "pass JSON")) from exc
    try:
        json.dumps(value)
    except RecursionError as exc:
        raise _Bad(_TOO_DEEP, "pass data nested a few hundred levels at most") from exc
    except (TypeError, ValueError) as exc:
        fix = "pass only dicts, lists, strings, numbers, booleans and None"
        raise _Bad(f"cannot be written as JSON ({exc})", fix) from exc
    return value


def _call(func: Callable[[str], Any], value: Any) -> Any:
    if not isinstance(value, str):
        return value  # given from Python: taken as already converted
    try:
        return func(value)
    except Exception as exc:
        name = getattr(func, "__qualname__", repr(func))
        raise _Bad(
            f"was rejected by {name} ({_kind_of(exc)}: {exc})", f"pass a value {name} accepts"
        ) from exc


def _coerce(kind: Any, value: Any) -> Any:
    """Convert a value for a parameter of type ``kind``, or raise :class:`_Bad`."""
    if kind is JSONType:
        return _to_json(value)
    if kind not in (str, int, float, bool):
        return _call(kind, value)
    if isinstance(value, str):
        return value if kind is str else _parse(kind, value)
    if isinstance(value, bool):
        if kind is bool:
            return value
        if kind is not str:
            raise _Bad("is a bool, and bools are not numbers here", _hint(kind))
    elif isinstance(value, numbers.Integral) and kind in (int, float):
        try:
            return kind(value)
        except OverflowError as exc:
            raise _Bad("is too large for a float", "pass a smaller number") from exc
    elif isinstance(value, numbers.Real) and kind is float:
        return float(value)
    raise _Bad(f"is of type {_kind_of(value)}, not {kind.__name__}", _hint(kind))


def _pick_type(name: str, default: Any, declared: Any) -> Any:
    if declared is None:
        if default is None:
            return str
        for kind in (bool, int, float, str):  # bool first: True is an int too
            if isinstance(default, kind):
                return kind
        problem = f"cannot infer a type from its default {_show(default)}"
    elif declared is JSONType or isinstance(declared, JSONType):
        return JSONType
    elif callable(declared):
        return declared
    else:
        problem = f"has type={_show(declared)}, which is not a type"
    raise FlowValidationError(
        f"Parameter '{name}' {problem}; pass type= str, int, float, bool, JSONType (for a dict "
        "or list) or a function that converts a string."
    )


class Parameter:
    """A value given to a run, readable in every step as ``self.<attribute>``; read-only.

    :param name: what users pass: ``flow.run(name=...)`` or ``--name VALUE``.
    :param default: used when no value (or None) is given; None means no default.
    :param type: str, int, float, bool, JSONType or a function converting a string;
        inferred from ``default`` when omitted (str without a default).
    :param help: one line for the command line's help.
    :param required: refuse a run that has neither a value nor a default.
    :param show_default: as in Metaflow, whether ``--help`` shows the default (it does
        unless this is False).
    :raises FlowValidationError: ``type`` is unusable, or cannot be inferred.
    """

    is_file: bool = False

    def __init__(
        self,
        name: str,
        default: Any = None,
        type: Any = None,
        help: str | None = None,
        required: bool = False,
        show_default: bool | None = None,
    ) -> None:
        self.name = name
        self.attr = ""  # set by __set_name__ when the class body runs
        self.default = default
        self.type: Any = _pick_type(name, default, type)
        self.help = help
        self.required = required
        self.show_default = show_default is not False

    @property
    def has_default(self) -> bool:
        """Whether a default applies when no value is given."""
        return self.default is not None

    @property
    def _label(self) -> str:
        return f"{_kind_of(self)} '{self.name}'"

    def __repr__(self) -> str:
        return f"{_kind_of(self)}({self.name!r}, default={self.default!r})"

    def __set_name__(self, owner: builtins.type, name: str) -> None:
        if not self.attr:  # a second binding is reported by parameters_of
            self.attr = name

    @overload
    def __get__(self, instance: None, owner: builtins.type | None = None) -> Self: ...
    @overload
    def __get__(self, instance: object, owner: builtins.type | None = None) -> Any: ...
    def __get__(self, instance: object | None, owner: builtins.type | None = None) -> Any:
        if instance is None:
            return self
        return cast(_ParameterHost, instance)._af_parameter_value(self.attr)

    def __set__(self, instance: object, value: Any) -> None:
        raise AttributeError(
            f"{self._label} of flow {_kind_of(instance)} is read-only for the whole run; "
            f"store a changed value under another name, such as self.{self.attr}_used.",
            name=self.attr,
            obj=instance,
        )

    def __delete__(self, instance: object) -> None:
        self.__set__(instance, None)

    def _coerce(self, value: Any) -> Any:
        return _coerce(self.type, value)

    def _convert(self, value: Any, flow: str, *, from_default: bool = False) -> Any:
        if value is None:
            return None
        try:
            return self._coerce(value)
        except _Bad as bad:
            problem, fix = bad.args
            verb = "has default" if from_default else "was given"
            fix = f"correct default= in the flow ({fix})" if from_default else fix
            raise ParameterError(
                f"{self._label} of flow {flow} {verb} {_show(value)}, which {problem}; {fix}.",
                self.name,
            ) from bad.__cause__

    def convert(self, value: Any, *, flow: str) -> Any:
        """Turn a Python value or a command-line string into this parameter's value.

        None stays None; a non-string given to a converter function is kept as it is.

        :param value: what the user gave.
        :param flow: the flow's name, for the message.
        :raises ParameterError: the value does not fit the type; the message says why.
        """
        return self._convert(value, flow)

    def _type_name(self) -> str:
        kind = self.type
        return "json" if kind is JSONType else str(getattr(kind, "__qualname__", repr(kind)))

    def describe(self) -> dict[str, Any]:
        """A JSON-able description, for ``show``, the command line and the store."""
        try:
            default = json.loads(json.dumps(self.default))
        except (TypeError, ValueError):
            default = repr(self.default)
        kind = "file" if self.is_file else "parameter"
        return {
            "name": self.name,
            "attr": self.attr,
            "kind": kind,
            "type": self._type_name(),
            "default": default,
            "help": self.help,
            "required": self.required,
        }


class IncludeFile(Parameter):
    """A parameter given as a file path, whose artifact is the file's content.

    :param name: what users pass: ``flow.run(name="data.csv")`` or ``--name PATH``.
    :param default: the path used when none is given (relative to the working directory).
    :param is_text: decode the content to str with ``encoding``; else keep bytes.
    :param encoding: a Python codec name, for text files.
    :param help: one line for the command line's help.
    :param required: refuse a run that has neither a path nor a default.
    :param max_bytes: the largest file accepted (default 256 MiB); a larger one is refused
        before the run starts, and so is anything but a regular file (a FIFO, a device).
    :param show_default: as in Metaflow, whether ``--help`` shows the default path.
    :raises FlowValidationError: the default is not a path, the encoding is unknown, or
        ``max_bytes`` is not a positive whole number.
    """

    is_file = True

    def __init__(
        self,
        name: str,
        default: str | os.PathLike[str] | None = None,
        is_text: bool = True,
        encoding: str = "utf-8",
        help: str | None = None,
        required: bool = False,
        max_bytes: int = INCLUDE_MAX_BYTES,
        show_default: bool | None = None,
    ) -> None:
        problem = None
        try:
            codecs.lookup(encoding)
        except LookupError:
            problem = f"has unknown encoding={encoding!r}; use a codec such as 'utf-8'"
        if default is not None and not isinstance(default, str | os.PathLike):
            problem = f"has default={_show(default)}; use a path (str or pathlib.Path)"
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            problem = f"has max_bytes={_show(max_bytes)}; use a positive whole number of bytes"
        if problem:
            raise FlowValidationError(f"IncludeFile '{name}' {problem}.")
        path = None if default is None else str(os.fspath(default))
        super().__init__(
            name, default=path, type=str, help=help, required=required, show_default=show_default
        )
        self.is_text = is_text
        self.encoding = encoding
        self.max_bytes = max_bytes

    def _coerce(self, value: Any) -> Any:
        path = os.fspath(value) if isinstance(value, str | os.PathLike) else None
        if not isinstance(path, str) or not path:
            raise _Bad("is not a path", "pass the file's path as a str or pathlib.Path")
        if "\0" in path:
            raise _Bad("contains a NUL character (no path has one)", "pass the file's path")
        return os.path.abspath(path)

    def _type_name(self) -> str:
        return "str" if self.is_text else "bytes"

    def describe(self) -> dict[str, Any]:
        """A JSON-able description; adds ``is_text`` and ``encoding`` to the parameter's."""
        return super().describe() | {
            "is_text": self.is_text,
            "encoding": self.encoding,
            "max_bytes": self.max_bytes,
        }

    def decode_content(self, data: bytes, *, path: str, flow: str) -> str | bytes:
        """Turn the bytes read from the file into the artifact: str for text, else bytes.

        :param data: the whole file, as the runtime read it.
        :param path: the file read, for the message.
        :param flow: the flow's name, for the message.
        :raises ParameterError: a text file is not valid in ``encoding``.
        """
        if not self.is_text:
            return bytes(data)
        try:
            return data.decode(self.encoding)
        except UnicodeDecodeError as exc:
            raise ParameterError(
                f"{self._label} of flow {flow}: {path} is not {self.encoding} text ({exc.reason} "
                f"at byte {exc.start}); declare its encoding=, or is_text=False to get bytes.",
                self.name,
            ) from exc
