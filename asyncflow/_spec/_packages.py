"""``@conda``, ``@pypi`` (steps) and ``@conda_base``, ``@pypi_base`` (flows): the packages a
flow asks for.

asyncflow builds no environments: every step runs in the interpreter that runs the flow. The
decorators record what each step asks for (:class:`PackageRequest`); before a run starts the
runtime checks that each package is installed here (``_runtime/_packages``). Misuse (packages
that are not a dict of names to version strings, a decorator twice on one step, a flow
decorator on something that is not a class) is a :class:`FlowValidationError` raised while
the class body runs, so before any run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from .._errors import FlowValidationError
from ._settings import PackageRequest
from ._step import STEP_ATTR, StepInfo, decorated_step

__all__ = [
    "BASE_ATTR",
    "conda",
    "conda_base",
    "pypi",
    "pypi_base",
    "step_requests",
]

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound=type)

#: The class attribute holding a flow's @conda_base / @pypi_base requests, by manager.
BASE_ATTR = "_af_package_bases"


def _packages(decorator: str, packages: object, libraries: object) -> tuple[tuple[str, str], ...]:
    found: dict[str, str] = {}
    for given in (libraries, packages):  # packages win over libraries, as in Metaflow
        if given is None:
            continue
        if not isinstance(given, Mapping):
            raise FlowValidationError(
                f"@{decorator}(packages={given!r}): packages must be a dict of package names "
                'to version specs, e.g. {"pandas": "2.2.2", "numpy": ">=1.26"} ("" for any '
                "version)."
            )
        for name, spec in given.items():
            if not isinstance(name, str) or not name.strip():
                raise FlowValidationError(
                    f"@{decorator}: the package name {name!r} is not a name; write package "
                    'names as strings, e.g. {"pandas": "2.2.2"}.'
                )
            if spec is None:
                spec = ""
            if not isinstance(spec, str):
                raise FlowValidationError(
                    f"@{decorator}: the version of {name!r} is {spec!r}, not a string; write "
                    'it as a string such as "1.5.3" or ">=1.5" ("" for any version).'
                )
            found[name.strip()] = spec.strip()
    return tuple(found.items())


def _request(
    manager: str,
    decorator: str,
    packages: object,
    libraries: object,
    python: object,
    disabled: object,
    where: str,
) -> PackageRequest:
    if python is not None and (not isinstance(python, str) or not python.strip()):
        raise FlowValidationError(
            f"@{decorator}(python={python!r}): python must be a version string such as "
            '"3.11" or ">=3.10", or left out for the Python running the flow.'
        )
    return PackageRequest(
        manager,
        _packages(decorator, packages, libraries),
        python.strip() if isinstance(python, str) else None,
        bool(disabled),
        where,
    )


def _step_decorator(manager: str) -> Callable[..., Any]:
    def decorator(
        packages: Any = None,
        libraries: Any = None,
        python: str | None = None,
        disabled: bool = False,
    ) -> Any:
        if callable(packages) and not isinstance(packages, Mapping):
            return decorator()(packages)  # written bare: nothing asked
        request = _request(manager, manager, packages, libraries, python, disabled, "")

        def apply(func: F) -> F:
            info = decorated_step(func, manager)
            if any(r.manager == manager for r in info.packages):
                raise FlowValidationError(
                    f"step {info.name!r} ({info.where}) has @{manager} twice; keep one.",
                    info.name,
                )
            where = f"step {info.name!r} ({info.where})"
            own = dataclasses.replace(request, where=where)
            changed = dataclasses.replace(info, packages=(*info.packages, own))
            setattr(func, STEP_ATTR, changed)
            return func

        return apply

    decorator.__name__ = decorator.__qualname__ = manager
    return decorator


def _flow_decorator(manager: str) -> Callable[..., Any]:
    name = f"{manager}_base"

    def decorator(
        packages: Any = None,
        libraries: Any = None,
        python: str | None = None,
        disabled: bool = False,
    ) -> Any:
        if isinstance(packages, type):
            return decorator()(packages)  # written bare: nothing asked
        request = _request(manager, name, packages, libraries, python, disabled, "")

        def apply(cls: C) -> C:
            if not isinstance(cls, type):
                raise FlowValidationError(
                    f"@{name} is applied to {cls!r}, which is not a flow class; put @{name} "
                    "above `class XFlow(FlowSpec):`."
                )
            bases = dict(cls.__dict__.get(BASE_ATTR, {}))
            if manager in bases:
                raise FlowValidationError(f"flow {cls.__name__} has @{name} twice; keep one.")
            bases[manager] = dataclasses.replace(request, where=f"flow {cls.__name__}")
            setattr(cls, BASE_ATTR, bases)
            return cls

        return apply

    decorator.__name__ = decorator.__qualname__ = name
    return decorator


conda = _step_decorator("conda")
conda.__doc__ = """The Conda packages a step needs: ``@conda(packages={"pandas": "2.2.2"},
python="3.11")`` above ``@step``.

asyncflow builds no environments: before a run starts it checks that each package is
installed in the interpreter running the flow, and refuses to start (naming the packages and
the pip command that installs them) when one is missing. Another installed version, or
another Python than ``python=``, is one warning, not an error. Augments ``@conda_base``;
``libraries=`` is accepted as Metaflow's older name of ``packages=``; ``disabled=True``
ignores the decorator.
"""
pypi = _step_decorator("pypi")
pypi.__doc__ = """The PyPI packages a step needs: ``@pypi(packages={"pandas": "2.2.2"},
python="3.11")`` above ``@step``; checked as for :func:`conda` (no environment is built)."""
conda_base = _flow_decorator("conda")
conda_base.__doc__ = """The Conda packages every step needs, above the flow class; each step's
``@conda`` adds to it (a step's version of a package wins). Checked as for :func:`conda`."""
pypi_base = _flow_decorator("pypi")
pypi_base.__doc__ = """The PyPI packages every step needs, above the flow class; each step's
``@pypi`` adds to it (a step's version of a package wins). Checked as for :func:`conda`."""


def step_requests(flow_cls: type, info: StepInfo) -> list[PackageRequest]:
    """What step ``info`` of ``flow_cls`` asks for: per manager, the flow's base request with
    the step's own on top (the step's version of a package wins); disabled ones left out."""
    bases: Mapping[str, PackageRequest] = getattr(flow_cls, BASE_ATTR, {})
    own = {r.manager: r for r in info.packages}
    merged: list[PackageRequest] = []
    for manager in ("conda", "pypi"):
        base, step = bases.get(manager), own.get(manager)
        if step is not None and step.disabled:
            continue
        if step is None:
            if base is not None and not base.disabled:
                merged.append(base)
            continue
        if base is None or base.disabled:
            merged.append(step)
            continue
        packages = dict(base.packages) | dict(step.packages)
        python = step.python or base.python
        merged.append(PackageRequest(manager, tuple(packages.items()), python, False, step.where))
    return merged
