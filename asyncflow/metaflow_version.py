"""Version information where Metaflow's users look for it.

``from metaflow.metaflow_version import get_version`` becomes
``from asyncflow.metaflow_version import get_version``; it returns asyncflow's version
(also ``asyncflow.__version__``, as ``metaflow.__version__``).
"""

from __future__ import annotations

from ._version import __version__

__all__ = ["get_version"]


def get_version(public: bool = False) -> str:
    """asyncflow's version, e.g. ``"0.1.0"`` (``public`` is accepted as Metaflow takes it;
    the version is the same)."""
    return __version__
