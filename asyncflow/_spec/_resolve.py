"""A flow's parameters and a run's values for them.

:func:`parameters_of` finds the parameters a flow class declares (its bases' too) and checks
their names against the one name rule (:mod:`._names`); :func:`resolve_parameters` turns what
a run was given, keyed by parameter *name* (``flow.run(alpha=0.1)`` or ``--alpha 0.1``), into
typed values keyed by *attribute*, applying defaults.
"""

from __future__ import annotations

import builtins
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._errors import FlowValidationError, ParameterError, UsageError, shown
from ._config import configs_of
from ._names import COMMAND_LINE_NAMES, RESERVED_NAMES, is_plain_name
from ._params import Parameter

__all__ = ["Resolved", "parameters_of", "refuse_run_options", "resolve_parameters"]


def _name_problem(role: str, text: Any) -> str | None:
    if not is_plain_name(text):
        return f"has {role} {text!r}, which is not a Python identifier; rename it"
    if text.startswith("_"):
        return f"has {role} {text!r}, which starts with '_' (private); remove the '_'"
    if text in RESERVED_NAMES:
        reserved = ", ".join(sorted(RESERVED_NAMES))
        return f"has {role} {text!r}, which FlowSpec uses; rename it (reserved: {reserved})"
    if role == "name" and text in COMMAND_LINE_NAMES:
        taken = ", ".join(f"--{n}" for n in sorted(COMMAND_LINE_NAMES))
        return (
            f"has name {text!r}, whose option --{text} the flow's command line has already; "
            f"rename it (taken: {taken})"
        )
    return None


def parameters_of(flow_cls: builtins.type) -> dict[str, Parameter]:
    """The parameters of a flow class by attribute: base classes' first, in definition order.

    A subclass may redefine an inherited parameter, or hide it with any other attribute.

    :param flow_cls: the FlowSpec subclass.
    :raises FlowValidationError: a name or attribute is not an identifier, starts with '_'
        or is reserved; two parameters share a name; one Parameter object is bound twice.
    """
    found: dict[str, Parameter] = {}
    for klass in reversed(flow_cls.__mro__):
        for attr, value in vars(klass).items():
            if isinstance(value, Parameter):
                found[attr] = value
            else:
                found.pop(attr, None)
    classes = {a: next(k for k in flow_cls.__mro__ if a in vars(k)) for a in found}
    owner = {a: k.__qualname__.rpartition("<locals>.")[2] for a, k in classes.items()}
    named: dict[str, str] = {}
    for attr, param in found.items():
        problem = _name_problem("name", param.name) or _name_problem("attribute", attr)
        if param.attr != attr:
            bound = f"is the object bound to '{param.attr}'" if param.attr else "was set late"
            problem = f"{bound}; create a separate Parameter(...) in the class body per attribute"
        elif param.name in named:
            twin = named[param.name]
            problem = f"has the name of the parameter at {owner[twin]}.{twin}; rename one"
        elif param.name != attr and param.name in found:
            # run(b=...) would set self.a, while self.b is another parameter
            problem = f"is named like the attribute {owner[param.name]}.{param.name} of another"
            problem += " parameter; name each parameter like its attribute"
        if problem:
            raise FlowValidationError(f"{param._label} at {owner[attr]}.{attr} {problem}.")
        named[param.name] = attr
    return found


@dataclass(frozen=True, slots=True)
class Resolved:
    """A run's parameters, ready for the runtime; every attribute is in exactly one dict.

    :param values: attribute -> typed value (None for an absent optional parameter or file).
    :param files: attribute -> absolute path of an IncludeFile, for the runtime to read.
    """

    values: dict[str, Any]
    files: dict[str, str]


def _unknown_message(flow: str, keys: list[str], params: Mapping[str, Parameter]) -> str:
    names = [p.name for p in params.values()]
    if not names:
        given = ", ".join(shown(key) for key in keys)
        return f"Flow {flow} takes no parameters but was given {given}; remove them."
    parts = []
    for key in keys:
        close = difflib.get_close_matches(key, names, n=1)
        parts.append(shown(key) + (f" (did you mean '{close[0]}'?)" if close else ""))
    return f"Flow {flow} has no parameter {', '.join(parts)}; valid parameters: {', '.join(names)}."


def resolve_parameters(
    flow_cls: builtins.type, flow_name: str, given: Mapping[str, Any]
) -> Resolved:
    """Check and convert the values given to a run, applying defaults.

    A value of None counts as not given, so the default applies.

    :param flow_cls: the FlowSpec subclass.
    :param flow_name: the flow's name, for messages.
    :param given: parameter name -> Python value or command-line string.
    :raises ParameterError: an unknown name, a missing required value or a bad value.
    :raises FlowValidationError: the flow's parameters are badly declared.
    """
    params = parameters_of(flow_cls)
    names = {param.name for param in params.values()}
    if unknown := [key for key in given if key not in names]:
        configs = [c.name for c in configs_of(flow_cls).values() if c.name in unknown]
        if configs:
            raise ParameterError(
                f"Flow {flow_name}: {', '.join(map(repr, configs))} is a Config, not a "
                "parameter; a config is given to the flow object, "
                f"{flow_name}(config={{{configs[0]!r}: {{...}}}}), or on the command line "
                f"(--config {configs[0]} FILE, --config-value {configs[0]} JSON).",
                configs[0],
            )
        raise ParameterError(_unknown_message(flow_name, unknown, params), unknown[0])
    resolved = Resolved(values={}, files={})
    for param in params.values():
        raw = given.get(param.name)
        value = param._convert(
            param.default if raw is None else raw, flow_name, from_default=raw is None
        )
        if value is None and param.required:
            kind = "a file path" if param.is_file else param._type_name()
            raise ParameterError(
                f"Flow {flow_name} requires {param._label} ({kind}) but got no "
                f"value; pass flow.run({param.name}=...) or --{param.name} VALUE.",
                param.name,
            )
        if param.is_file and value is not None:
            resolved.files[param.attr] = value
        else:
            resolved.values[param.attr] = value
    return resolved


def refuse_run_options(
    flow: str, method: str, given: Mapping[str, Any], params: Mapping[str, Parameter]
) -> None:
    """Refuse a run option (``max_passes``, ...) given to ``run``/``resume`` instead of the
    constructor, unless the flow has a parameter of that name.

    :raises UsageError: naming the option and where it goes.
    """
    names = {p.name for p in params.values()} | set(params)
    options = [k for k in given if k in _RUN_OPTIONS and k not in names]
    if options:
        listed = ", ".join(f"{k}=..." for k in options)
        note = _RESUME_NOTE if method == "resume" and "max_passes" in options else ""
        raise UsageError(
            f"{listed} is an option of the flow, not of {flow}.{method}(): give it to the "
            f"constructor, {flow}({listed}).{method}(){note}.",
            options[0],
        )


_RESUME_NOTE = " (a resume does not keep the origin's max_passes: give it again)"
_RUN_OPTIONS = frozenset(
    ("max_workers", "max_passes", "tags", "cache_bytes", "echo", "executor", "processes",
     "dask_client", "dask_address", "branch", "production", "config", "store")
)  # fmt: skip
