"""``Metaflow()``: every flow of a store, as Metaflow's client object of that name lists them."""

from __future__ import annotations

from collections.abc import Iterator

from .._store._paths import resolve_store_path
from ._flow import Flow, StorePath, alist_flows, list_flows

__all__ = ["Metaflow"]


class Metaflow:
    """The flows of one store: ``Metaflow().flows``, ``for flow in Metaflow()``.

    Metaflow's ``Metaflow()`` lists the flows its metadata service knows; asyncflow's lists
    the flows with runs in the store file (the default store unless ``store=`` is given).
    Each is a :class:`Flow` opened on that store.

    :param store: the store file; None for the default store.
    :param trust: passed to each :class:`Flow` (load pickled values of their runs).
    """

    def __init__(self, store: StorePath = None, *, trust: bool = False) -> None:
        self.store = resolve_store_path(store)
        self._trust = trust

    @property
    def flows(self) -> list[Flow]:
        """Every flow with a run in the store, by name.

        :raises StoreError: there is no store file there.
        """
        return [Flow(name, self.store, trust=self._trust) for name in list_flows(self.store)]

    async def aflows(self) -> list[Flow]:
        """The awaitable twin of :attr:`flows`."""
        names = await alist_flows(self.store)
        return [Flow(name, self.store, trust=self._trust) for name in names]

    def __iter__(self) -> Iterator[Flow]:
        return iter(self.flows)

    def __repr__(self) -> str:
        return f"Metaflow(store={self.store!r})"
