"""``@resources``, ``@environment``, ``@kubernetes`` and ``@batch``: where and how a step runs.

Metaflow's names, with local meanings (the README's "Coming from Metaflow" says which):

- ``@resources(cpu=1, memory=4096, gpu=None, disk=None, shared_memory=None)`` declares what a
  task needs (memory and disk in MB). It is recorded with the run (``task.resources``) and is
  a hint where an executor can honour it (Dask worker resources, see ``_runtime._placing``).
- ``@environment(vars={...})`` sets environment variables for the step's tasks. They are
  process-wide, so such a step never runs on a thread of the coordinator: on the process
  executor, or on Dask when that is its executor. On a coroutine step, or with
  ``@executor("thread")``, it is a :class:`FlowValidationError`.
- ``@kubernetes(...)`` and ``@batch(...)`` take Metaflow's arguments; the step runs here, and
  each run says so once in a warning. Their ``cpu``, ``memory``, ``gpu``, ``disk`` and
  ``shared_memory`` count as resources (the larger of theirs and ``@resources``'s, as in
  Metaflow).

Each decorator may be written bare. Misuse is a :class:`FlowValidationError` raised while the
class body runs (or when ``--with`` applies the decorator), naming the step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from .._errors import FlowValidationError
from ._config_deco import defer
from ._settings import RESOURCE_AMOUNTS, Compute, Resources, resource_amount
from ._step import STEP_ATTR, StepInfo, decorated_step

__all__ = [
    "COMPUTE_LAYERS",
    "batch",
    "check_placement",
    "effective_resources",
    "environment",
    "kubernetes",
    "resources",
]

F = TypeVar("F", bound=Callable[..., Any])

#: The remote compute layers Metaflow offers, and what asyncflow calls them in messages.
COMPUTE_LAYERS = {"kubernetes": "Kubernetes", "batch": "AWS Batch"}


def _checked(info: StepInfo, decorator: str, values: Mapping[str, object]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        try:
            out[key] = resource_amount(key, value)
        except ValueError:
            what = "a whole number >= 0" if key == "gpu" else "a positive number"
            unit = {"memory": " of MB", "disk": " of MB", "shared_memory": " of MiB"}.get(key, "")
            raise FlowValidationError(
                f"@{decorator}({key}={value!r}) on step {info.name!r} ({info.where}): {key} "
                f"must be {what}{unit}; leave it out for the default.",
                info.name,
            ) from None
    return out


def _info(func: object, decorator: str) -> StepInfo:
    return decorated_step(func, decorator)


def _set(func: F, info: StepInfo, **changes: Any) -> F:
    new = dataclasses.replace(info, **changes)
    check_placement(new)
    setattr(func, STEP_ATTR, new)
    return func


def _twice(info: StepInfo, decorator: str) -> FlowValidationError:
    return FlowValidationError(
        f"step {info.name!r} ({info.where}) has @{decorator} twice; keep one.", info.name
    )


def check_placement(info: StepInfo) -> None:
    """Refuse what cannot work together on one step: ``@environment`` variables on a step
    that runs in the coordinator's process (a coroutine step, or ``@executor("thread")``).

    :raises FlowValidationError: naming the step and why.
    """
    if not info.environment:
        return
    if info.is_async:
        raise FlowValidationError(
            f"@environment is on step {info.name!r} ({info.where}), an async def step: "
            "environment variables belong to the whole process, and coroutine steps run on "
            "the event loop of the coordinating process, among the other tasks. Make it a "
            "plain def (it then runs on the process executor), or set the variables "
            "yourself before the run.",
            info.name,
        )
    if info.executor == "thread":
        raise FlowValidationError(
            f'@environment is on step {info.name!r} ({info.where}) with @executor("thread"): '
            "environment variables belong to the whole process, so such a step runs in a "
            'worker process. Remove @executor("thread") (it then runs on the process '
            'executor), or use @executor("process") or @executor("dask").',
            info.name,
        )


def resources(
    cpu: Any = 1,
    memory: Any = 4096,
    gpu: Any = None,
    disk: Any = None,
    shared_memory: Any = None,
) -> Any:
    """Declare what each task of the step needs, as Metaflow's ``@resources``.

    Recorded with the run (``task.resources``); a hint to the Dask executor when its cluster
    declares such worker resources (see the README). Bare ``@resources`` means the defaults.

    :param cpu: CPUs (fractions allowed).
    :param memory: memory in MB.
    :param gpu: GPUs (a whole number).
    :param disk: disk in MB.
    :param shared_memory: size of ``/dev/shm`` in MiB.
    :raises FlowValidationError: a value that is not a positive number (gpu: a whole number
        >= 0); twice on one step.
    """
    if callable(cpu):
        return resources()(cpu)
    given = {"cpu": cpu, "memory": memory, "gpu": gpu, "disk": disk}
    given["shared_memory"] = shared_memory
    later = defer("resources", given)
    if later is not None:
        return later

    def apply(func: F) -> F:
        info = _info(func, "resources")
        if info.resources is not None:
            raise _twice(info, "resources")
        return _set(func, info, resources=Resources(**_checked(info, "resources", given)))

    return apply


def environment(vars: Any = None) -> Any:
    """Set environment variables for each task of the step, as Metaflow's ``@environment``.

    Environment variables belong to the whole process, so the step runs on the process
    executor (or on Dask when that is its executor); the worker sets them for the task and
    restores the earlier values after it. Bare ``@environment`` sets nothing.

    :param vars: a dict of variable names to string values.
    :raises FlowValidationError: ``vars`` is not a dict of non-empty names (no ``=``) to
        strings; the step is ``async def`` or has ``@executor("thread")``; twice on a step.
    """
    if callable(vars):
        return environment()(vars)
    later = defer("environment", {"vars": vars})
    if later is not None:
        return later

    def apply(func: F) -> F:
        info = _info(func, "environment")
        if info.environment is not None:
            raise _twice(info, "environment")
        return _set(func, info, environment=_variables(info, vars))

    return apply


def _variables(info: StepInfo, given: object) -> tuple[tuple[str, str], ...]:
    where = f"@environment(vars=...) on step {info.name!r} ({info.where})"
    if given is None:
        return ()
    if not isinstance(given, Mapping):
        raise FlowValidationError(
            f"{where} is of type {type(given).__name__}; pass a dict of names to string values, "
            'e.g. vars={"MY_SETTING": "1"}.',
            info.name,
        )
    out: list[tuple[str, str]] = []
    for name, value in given.items():
        if not isinstance(name, str) or not name or "=" in name or "\0" in name:
            raise FlowValidationError(
                f"{where} names the variable {name!r}; a variable's name is a non-empty "
                "string without '=' or NUL.",
                info.name,
            )
        if isinstance(value, str) and "\0" in value:
            raise FlowValidationError(
                f"{where} gives {name}={value!r}, which holds a NUL character; an environment "
                "variable's value cannot hold one: remove it.",
                info.name,
            )
        if not isinstance(value, str):
            raise FlowValidationError(
                f"{where} gives {name}={value!r}, of type {type(value).__name__}; environment "
                f"variables hold strings (as in Metaflow): write {name}={str(value)!r}.",
                info.name,
            )
        out.append((name, value))
    return tuple(out)


def _compute(name: str) -> Callable[..., Any]:
    layer = COMPUTE_LAYERS[name]

    def decorator(*args: Any, **attributes: Any) -> Any:
        if len(args) == 1 and callable(args[0]) and not attributes:
            return decorator()(args[0])
        if args:
            raise FlowValidationError(
                f"@{name} takes its arguments by name (as @{name}(cpu=2, memory=8192)), "
                f"not {args!r}."
            )
        later = defer(name, attributes)  # an argument given as config_expr(...)
        if later is not None:
            return later

        def apply(func: F) -> F:
            info = _info(func, name)
            if info.compute is not None:
                if info.compute.name == name:
                    raise _twice(info, name)
                raise FlowValidationError(
                    f"step {info.name!r} ({info.where}) has both @{info.compute.name} and "
                    f"@{name}; keep one (as Metaflow requires).",
                    info.name,
                )
            amounts = {
                k: v for k, v in attributes.items() if k in RESOURCE_AMOUNTS and v is not None
            }
            hints = tuple(_checked(info, name, amounts).items())
            return _set(func, info, compute=Compute(name, tuple(attributes.items()), hints))

        return apply

    decorator.__name__ = decorator.__qualname__ = name
    decorator.__doc__ = (
        f"Metaflow's ``@{name}`` (run the step on {layer}), accepted with any of its "
        "arguments: asyncflow runs the step here (on its executor: threads, the process "
        "pool or Dask) and each run says so once, in a warning. Its cpu, memory, gpu, disk "
        "and shared_memory count as the step's resources (see ``@resources``).\n\n"
        ":raises FlowValidationError: a resource that is not a positive number; twice on a "
        "step, or together with the other compute layer."
    )
    return decorator


kubernetes = _compute("kubernetes")
batch = _compute("batch")


def effective_resources(info: StepInfo) -> Resources | None:
    """The step's resources: ``@resources``, raised to the larger amounts its
    ``@kubernetes``/``@batch`` asks (as Metaflow combines them); without ``@resources``, the
    amounts ``@kubernetes``/``@batch`` asks (the others at their defaults); None when
    neither."""
    base = info.resources
    if info.compute is None or not info.compute.hints:
        return base
    merged = dataclasses.asdict(base if base is not None else Resources())
    for key, value in info.compute.hints:
        if base is None or merged[key] is None:
            merged[key] = value  # without @resources, Metaflow asks for what the layer says
        else:
            merged[key] = max(merged[key], value)
    return Resources(**merged)
