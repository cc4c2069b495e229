"""The defaults of a run's limits, in a module of their own: ``FlowSpec``'s signature shows
them, and defining a flow must not import the runtime that enforces them."""

from __future__ import annotations

__all__ = ["DEFAULT_MAX_PASSES", "DEFAULT_MAX_WORKERS"]

#: How many tasks may run at once.
DEFAULT_MAX_WORKERS = 16
#: How many tasks of one step a run may start, per foreach element (see ``_switch``).
DEFAULT_MAX_PASSES = 1000
