"""The settings decorators record on a step: small frozen values, one type per decorator.

``@retry``/``@catch`` (``_decorators``), ``@conda``/``@pypi`` (``_packages``), ``@card``
(``_cards``) and ``@resources``/``@kubernetes``/``@batch`` (``_placement``) check their
arguments and store one of these on the step's :class:`~._step.StepInfo`; the runtime and
the client read them. A leaf module: it imports nothing from the rest of ``_spec``, so the
decorator modules and ``_step`` may both import it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

__all__ = [
    "RESOURCE_AMOUNTS",
    "CardSpec",
    "CatchPolicy",
    "Compute",
    "PackageRequest",
    "Resources",
    "RetryPolicy",
    "resource_amount",
]


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Re-run a failed task ``times`` more times, waiting ``minutes_between_retries``."""

    times: int
    minutes_between_retries: float


@dataclasses.dataclass(frozen=True, slots=True)
class CatchPolicy:
    """On final failure, store a description in ``self.<var>`` and carry on."""

    var: str | None
    print_exception: bool


@dataclasses.dataclass(frozen=True, slots=True)
class PackageRequest:
    """What one ``@conda``/``@pypi``(``_base``) decorator asks for.

    :param manager: ``"conda"`` or ``"pypi"``.
    :param packages: ``(name, version spec)`` pairs as written (``""``: any version).
    :param python: the Python version asked for, as written (None: any).
    :param disabled: ``disabled=True``: the request is ignored.
    :param where: the decorator's target, for messages (``step 'x' (file:line)`` or the flow).
    """

    manager: str
    packages: tuple[tuple[str, str], ...]
    python: str | None
    disabled: bool
    where: str


@dataclasses.dataclass(frozen=True, slots=True)
class CardSpec:
    """One ``@card`` on a step: its type, id, options and timeout (seconds)."""

    type: str
    id: str | None
    options: Mapping[str, Any]
    timeout: float


#: The resource arguments of @resources (and @kubernetes/@batch): (whole number required,
#: zero allowed).
RESOURCE_AMOUNTS: dict[str, tuple[bool, bool]] = {
    "cpu": (False, False),
    "memory": (False, False),
    "gpu": (True, True),
    "disk": (False, False),
    "shared_memory": (False, False),
}


@dataclasses.dataclass(frozen=True, slots=True)
class Resources:
    """What a task of a step declared it needs (``@resources``, or ``@kubernetes``/``@batch``).

    :ivar cpu: CPUs (fractions allowed).
    :ivar memory: memory in MB (MiB, 1,048,576 bytes).
    :ivar gpu: GPUs, None when not asked.
    :ivar disk: disk in MB, None when not asked.
    :ivar shared_memory: size of ``/dev/shm`` in MiB, None when not asked.
    """

    cpu: int | float = 1
    memory: int | float = 4096
    gpu: int | None = None
    disk: int | float | None = None
    shared_memory: int | float | None = None

    def to_json(self) -> dict[str, Any]:
        """The fields as a JSON-able dict (stored with the run's graph)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: object) -> Resources | None:
        """The resources stored with a run's graph; None when absent or not well-formed."""
        if not isinstance(data, dict):
            return None
        try:
            values = {
                k: resource_amount(k, data.get(k, getattr(cls(), k))) for k in RESOURCE_AMOUNTS
            }
        except ValueError:
            return None
        return cls(**values)


@dataclasses.dataclass(frozen=True, slots=True)
class Compute:
    """A ``@kubernetes`` or ``@batch`` on a step: its name, its arguments as given, and the
    resources among them."""

    name: str
    attributes: tuple[tuple[str, Any], ...]
    hints: tuple[tuple[str, int | float], ...]


def resource_amount(key: str, value: object) -> Any:
    """The resource amount ``value`` of ``key`` as a number (Metaflow also takes numbers
    written as strings).

    :raises ValueError: not an amount ``key`` takes (message: the key).
    """
    whole, zero = RESOURCE_AMOUNTS[key]
    if value is None and key not in ("cpu", "memory"):
        return None
    number: object = value
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise ValueError(key) from None
    if isinstance(number, bool) or not isinstance(number, int | float):
        raise ValueError(key)
    if math.isnan(number) or math.isinf(number) or number < 0 or (number == 0 and not zero):
        raise ValueError(key)
    if float(number).is_integer():
        return int(number)
    if whole:
        raise ValueError(key)
    return float(number)
