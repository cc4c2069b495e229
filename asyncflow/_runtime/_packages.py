"""Before a run: is every package that ``@conda``/``@pypi`` asks for installed here?

asyncflow builds no environments; every step runs in this interpreter. So a package a step
asks for must be installed in it: a missing one stops the run before it starts (nothing is
stored, the store file is not even created) with the pip command that installs it. Another
installed version than the one asked for, or another Python than ``python=``, is one
warning for the run, naming what was asked and what is installed.

A package is looked up by its distribution name (``importlib.metadata``; nothing is
imported): as written, without a Conda channel (``conda-forge::numpy``), under the PyPI name
of a Conda package where they differ (``pytorch`` is ``torch``, ``py-xgboost`` is
``xgboost``), and at last as an importable top-level module (found, not imported).
Versions are compared by their release numbers: ``"1.5.3"`` (that version; ``"1.5"`` is
any 1.5.x), ``"1.5.*"``, and comparisons ``>=1.5``, ``<2``, ``!=1.6``, ``~=1.5``, ``==1.5.3``,
joined by commas; ``""`` is any version.
"""

from __future__ import annotations

import importlib.util
import platform
import re
import shlex
import sys
from collections.abc import Iterable

import anyio.to_thread

from .._errors import AsyncflowWarning, FlowValidationError
from .._spec._flowgraph import FlowGraph
from .._spec._packages import BASE_ATTR, step_requests
from ._placing import warn_for_run

__all__ = ["before_run", "check_packages", "installed_version", "version_matches"]


# Conda packages whose PyPI distribution has another name.
_CONDA_TO_PYPI = {
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "pytorch-gpu": "torch",
    "py-xgboost": "xgboost",
    "py-lightgbm": "lightgbm",
    "tensorflow-gpu": "tensorflow",
    "matplotlib-base": "matplotlib",
    "pyyaml": "PyYAML",
    "python-graphviz": "graphviz",
}
_MISSING = object()


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_version(name: str) -> str | object | None:
    """The installed version of package ``name`` (a str), None when it is importable but has
    no version recorded, or ``_MISSING``."""
    bare = name.split("::", 1)[-1].strip()
    candidates = [bare, _CONDA_TO_PYPI.get(_normal(bare), bare)]
    if _normal(bare).startswith("py-"):
        candidates.append(bare[3:])
    from importlib import metadata  # ~10 ms (zipfile, email): only for flows that ask

    for candidate in candidates:
        try:
            return metadata.version(candidate)
        except (metadata.PackageNotFoundError, ValueError):
            continue
    module = bare.replace("-", "_")
    if module.isidentifier():
        try:
            if importlib.util.find_spec(module) is not None:
                return None
        except (ImportError, ValueError):
            pass
    return _MISSING


def _release(version: str) -> tuple[int, ...]:
    numbers = re.match(r"\s*v?(\d+(?:\.\d+)*)", version)
    return tuple(int(n) for n in numbers.group(1).split(".")) if numbers else ()


def _pad(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    width = max(len(a), len(b))
    return a + (0,) * (width - len(a)), b + (0,) * (width - len(b))


def _clause(installed: str, clause: str) -> bool:
    found = re.match(r"\s*(==|!=|>=|<=|~=|>|<|=)?\s*(.+?)\s*$", clause)
    if not found:
        return True
    op, wanted = found.group(1) or "", found.group(2)
    have = _release(installed)
    want = _release(wanted.removesuffix(".*"))
    if not want:
        return True  # not a version we can read: never a reason to complain
    series = wanted.endswith(".*") or op == "=" or (op == "" and len(want) < 3)
    if op in ("", "=", "==") and series:
        return have[: len(want)] == want  # "1.5", "1.5.*", "=1.5": the 1.5 series
    h, w = _pad(have, want)
    if op == "~=":
        keep = max(len(want) - 1, 1)
        return h >= w and have[:keep] == want[:keep]
    return {
        "": h == w,
        "==": h == w,
        "!=": h != w,
        ">=": h >= w,
        "<=": h <= w,
        ">": h > w,
        "<": h < w,
    }[op]


def version_matches(installed: str, spec: str) -> bool:
    """Whether version ``installed`` satisfies ``spec`` (see the module doc)."""
    return all(_clause(installed, c) for c in spec.split(",") if c.strip())


def _pip_requirement(name: str, spec: str) -> str:
    bare = name.split("::", 1)[-1].strip()
    bare = _CONDA_TO_PYPI.get(_normal(bare), bare)
    if not spec:
        return bare
    if spec[0] in "=<>!~":
        return bare + (spec if not spec.startswith("=") or spec.startswith("==") else "=" + spec)
    return f"{bare}=={spec}"


def check_packages(flow_cls: type, graph: FlowGraph) -> str | None:
    """Check what the steps of ``graph`` ask for with ``@conda``/``@pypi``.

    :returns: the run's one warning (versions that differ), or None.
    :raises FlowValidationError: packages are not installed; the message names them and the
        pip command that installs them.
    """
    requests = [(node.name, r) for node in graph for r in step_requests(flow_cls, node.info)]
    missing: dict[str, tuple[str, list[str]]] = {}  # pip requirement -> (name, steps)
    differs: dict[str, list[str]] = {}  # description -> steps
    python = platform.python_version()
    for step, request in requests:
        for name, spec in request.packages:
            version = installed_version(name)
            if version is _MISSING:
                requirement = _pip_requirement(name, spec)
                missing.setdefault(requirement, (name, []))[1].append(step)
            elif isinstance(version, str) and spec and not version_matches(version, spec):
                text = f"{name} {spec} is asked for (@{request.manager}), {version} is installed"
                differs.setdefault(text, []).append(step)
        if request.python and not version_matches(python, request.python):
            text = f"Python {request.python} is asked for, {python} runs the flow"
            differs.setdefault(text, []).append(step)
    if missing:
        names = ", ".join(f"{name} ({_steps(steps)})" for name, steps in missing.values())
        command = " ".join(shlex.quote(r) for r in missing)
        raise FlowValidationError(
            f"{graph.name} needs packages that are not installed in this Python "
            f"({sys.executable}): {names}. asyncflow builds no environments from @conda or "
            f"@pypi; install them first: {shlex.quote(sys.executable)} -m pip install "
            f"{command}"
        )
    if not differs:
        return None
    listed = "; ".join(f"{text} ({_steps(steps)})" for text, steps in differs.items())
    return (
        f"{graph.name}: {listed}. asyncflow builds no environments from @conda or @pypi: the "
        "steps run with what is installed."
    )


def _steps(steps: Iterable[str]) -> str:
    names = list(dict.fromkeys(steps))
    return ("step " if len(names) == 1 else "steps ") + ", ".join(names)


async def before_run(flow_cls: type, graph: FlowGraph) -> None:
    """What every run (and ``python flow.py check``) checks before it starts: the packages
    (raises, or one :class:`AsyncflowWarning`)."""
    asks = getattr(flow_cls, BASE_ATTR, None) or any(node.info.packages for node in graph)
    if asks:  # reads package metadata files: not on the loop
        warning = await anyio.to_thread.run_sync(check_packages, flow_cls, graph)
        if warning is not None:
            warn_for_run(warning, AsyncflowWarning, graph[graph.start_step].info)
