"""A reader of a run's live events (:class:`EventReader`, made by ``RunEvents.reader``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from .._store._events import Event, Item

if TYPE_CHECKING:
    from ._events import RunEvents

__all__ = ["EventReader"]


class EventReader:
    """One reader of a run's events: an async iterator from its cursor to ``RunFinished``.

    It holds its cursor and nothing else; events are made into objects as it reads them.
    """

    __slots__ = ("__weakref__", "_batch", "_hub", "_next", "_pos")

    def __init__(self, hub: RunEvents, first: int = 1) -> None:
        self._hub = hub
        self._next = first
        self._batch: list[Item] = []
        self._pos = 0

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        hub = self._hub
        while self._pos >= len(self._batch):
            items, behind, changed = hub._take(self._next)
            if behind:
                items = await hub._from_store(self._next)
            elif not items:
                if changed is None:
                    if hub.error is not None:
                        raise hub.error
                    raise StopAsyncIteration
                try:
                    await changed.wait()
                finally:
                    hub._done_waiting()
                continue
            self._batch, self._pos = items, 0
        item = self._batch[self._pos]
        self._pos += 1
        self._next = item[0] + 1
        if self._pos == len(self._batch):
            self._batch, self._pos = [], 0
        return hub.make(item)
