"""``@project``: the flow decorator that groups runs under a project and a branch, as
Metaflow's does for local runs.

A project's runs carry the system tags ``project:<name>`` and ``project_branch:<branch>``
(see ``_tags``). The branch is ``user.<username>`` by default, ``test.<branch>`` for a
branch given on the command line (``--branch``) or to the flow's constructor, ``prod`` with
``--production`` (``prod.<branch>`` with both), as Metaflow names them.
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .._errors import FlowValidationError, UsageError
from ._flowbase import FlowBase

__all__ = ["PROJECT_ATTR", "Project", "local_user", "project", "project_of", "resolve_branch"]

PROJECT_ATTR = "_af_project"
# Metaflow's rule for project and branch names: lowercase letters, digits and underscores,
# at most 128 characters (other systems that see these names rely on it).
NAME_MAX = 128
_NAME = re.compile(r"[a-z0-9_]+")

C = TypeVar("C", bound=type)


@dataclass(frozen=True, slots=True)
class Project:
    """What ``@project(...)`` says of a flow class."""

    name: str
    branch: str | None = None  # given in the decorator
    production: bool = False


def _name_problem(value: object, what: str) -> str | None:
    if not isinstance(value, str) or not value:
        return f"{what} must be a non-empty string, not {value!r}"
    if len(value) > NAME_MAX:
        return f"{what} {value[:40]!r}... has {len(value)} characters, more than {NAME_MAX}"
    if not _NAME.fullmatch(value):
        return (
            f"{what} {value!r} may hold only lowercase letters, digits and underscores "
            "(as in Metaflow)"
        )
    return None


def project(
    name: str | None = None, *, branch: str | None = None, production: bool = False
) -> Callable[[C], C]:
    """Group the runs of the decorated flow under project ``name`` (Metaflow's ``@project``).

    Each run records the system tags ``project:<name>`` and ``project_branch:<branch>``;
    inside a step, ``current.project_name``, ``current.branch_name`` and
    ``current.project_flow_name`` (``<name>.<branch>.<FlowName>``) say which. The branch is
    ``user.<username>`` unless ``--branch``/``--production`` (or ``branch=``/``production=``
    here or in the flow's constructor) say otherwise.

    :param name: the project's name: lowercase letters, digits and underscores, at most
        128 characters.
    :param branch: the branch for every run of the flow (then not also on the command line).
    :param production: use the production branch.
    :raises FlowValidationError: a bad name or branch, a class that is not a FlowSpec, or
        ``@project`` twice on one class; raised when the class is defined.
    """
    problem = _name_problem(name, "the @project name")
    if problem is None and branch is not None:
        problem = _name_problem(branch, "the @project branch")
    if problem is None and not isinstance(production, bool):
        problem = f"production must be True or False, not {production!r}"
    if problem is not None:
        raise FlowValidationError(
            f'@project(name={name!r}): {problem}; write e.g. @project(name="movies") above '
            "the class."
        )
    assert isinstance(name, str)
    spec = Project(name, branch, production)

    def decorate(cls: C) -> C:
        if not (isinstance(cls, type) and issubclass(cls, FlowBase)):
            raise FlowValidationError(
                f"@project(name={name!r}) decorates a flow class (a subclass of FlowSpec), "
                f"not {cls!r}; put it directly above `class ...(FlowSpec):`."
            )
        if PROJECT_ATTR in cls.__dict__:
            raise FlowValidationError(
                f"flow {cls.__name__} has @project twice ({cls.__dict__[PROJECT_ATTR].name!r} "
                f"and {name!r}); keep one."
            )
        setattr(cls, PROJECT_ATTR, spec)
        return cls

    return decorate


def project_of(cls: type) -> Project | None:
    """The ``@project`` of a flow class (inherited from a base flow too), or None."""
    found = getattr(cls, PROJECT_ATTR, None)
    return found if isinstance(found, Project) else None


def local_user() -> str:
    """Who runs flows here, as Metaflow finds its user: ``$ASYNCFLOW_USER``, else the first
    of ``$SUDO_USER``, ``$USERNAME``, ``$USER`` that is set and not ``root``, else the
    login name of the process's user, else ``unknown``."""
    for var in ("ASYNCFLOW_USER", "SUDO_USER", "USERNAME", "USER"):
        value = os.environ.get(var)
        if value and (value != "root" or var == "ASYNCFLOW_USER"):
            return value
    try:
        return getpass.getuser() or "unknown"
    except (OSError, KeyError, ImportError):
        return "unknown"


def resolve_branch(
    cls: type, branch: Any = None, production: Any = False, user: str | None = None
) -> tuple[str, str] | None:
    """``(project name, branch)`` of a run of ``cls`` started with ``branch`` and
    ``production`` (None, False: neither given); None for a flow without ``@project``.

    :raises UsageError: ``branch``/``production`` for a flow without ``@project``, a bad
        branch name, or a branch (or production) given both here and in the decorator.
    """
    spec = project_of(cls)
    name = getattr(cls, "__name__", "?")
    if production is not None and not isinstance(production, bool):
        raise UsageError(f"production must be True or False, not {production!r}.", "production")
    if spec is None:
        if branch is not None or production:
            option = "branch" if branch is not None else "production"
            raise UsageError(
                f"flow {name} has no @project, so it has no branches: {option}= (--{option}) "
                "applies only to a flow decorated with @project(name=...); add the decorator "
                "or leave the option out.",
                option,
            )
        return None
    if branch is not None:
        problem = _name_problem(branch, "the branch")
        if problem is not None:
            raise UsageError(f"{problem}; pass e.g. --branch my_test.", "branch")
    if (branch is not None and spec.branch is not None) or (production and spec.production):
        option = "branch" if branch is not None else "production"
        raise UsageError(
            f"flow {name} sets {option} in its @project already; give it either there or "
            f"as --{option} (or {option}=), not both.",
            option,
        )
    branch = branch if branch is not None else spec.branch
    production = bool(production or spec.production)
    if branch is not None:
        return spec.name, f"{'prod' if production else 'test'}.{branch}"
    if production:
        return spec.name, "prod"
    return spec.name, f"user.{user if user is not None else local_user()}"
