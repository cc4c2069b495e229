"""A reader of a run's live events (:class:`EventReader`, made by ``RunEvents.reader``).

A reader never holds the event loop for long, however far behind it is: it lets the loop
run after every :data:`YIELD_EVERY` events it hands out without waiting, and the events it
reads back from the store come about ``READER_EVENTS`` at a time, read, decoded and
made into Event objects in a worker thread. Readers of one run at the same place (many
readers started together, such as clients of a web service) share each such read.
"""

from __future__ import annotations

import asyncio
import itertools
import weakref
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from .._aio import shared_read
from .._errors import StoreError
from .._store._event_reads import EVENT_ROWS, READER_EVENTS, YIELD_EVERY, event_items
from .._store._events import Event, Item, make_event

if TYPE_CHECKING:
    from ._events import RunEvents

__all__ = ["EventReader", "read_stored"]

# The reads from the store in progress, by hub and first seq: a reader that wants the same
# events waits for that read instead of making its own.
_reads: weakref.WeakKeyDictionary[RunEvents, dict[int, asyncio.Future[list[Event]]]]
_reads = weakref.WeakKeyDictionary()

# The Events lately made from a hub's items in memory, by seq, shared by its readers: 200
# readers of one run then make each event once, not 200 times (the allocations alone had
# Python's collector pause the loop for 0.1-0.5 s). At most MADE_EVENTS per hub.
_made: weakref.WeakKeyDictionary[RunEvents, dict[int, Event]] = weakref.WeakKeyDictionary()
MADE_EVENTS = 4096


def _event_of(hub: RunEvents, item: Item) -> Event:
    made = _made.get(hub)
    if made is None:
        made = _made[hub] = {}
    event = made.get(item[0])
    if event is None:
        event = made[item[0]] = hub.make(item)
        if len(made) > MADE_EVENTS:
            for seq in list(itertools.islice(made, MADE_EVENTS // 4)):
                del made[seq]
    return event


def _stored(hub: RunEvents, first: int) -> list[Event]:
    # In a worker thread: a few rows of events from seq ``first`` on, as Events.
    read = hub._read
    assert read is not None
    items: list[Item] = read(event_items(hub.run_id, first, EVENT_ROWS, READER_EVENTS))
    if not items or items[0][0] != first:
        raise StoreError(
            f"the events of run {hub.flow}/{hub.run_id} from seq {first} on are missing "
            f"from the store file {hub._path!r} (a write of the run failed, or they were "
            "deleted); read those that are there with run.events().",
            hub._path,
        )
    flow, run = hub.flow, str(hub.run_id)
    return [make_event(item, flow, run) for item in items]


async def read_stored(hub: RunEvents, first: int) -> list[Event]:
    """The stored events of ``hub``'s run from seq ``first`` on (a few rows of them), read in
    a worker thread; one read for every reader asking for the same ``first`` meanwhile.

    :raises StoreError: the events from ``first`` on are missing or damaged.
    """
    return await shared_read(_reads.setdefault(hub, {}), first, lambda: _stored(hub, first))


class EventReader:
    """One reader of a run's events: an async iterator from its cursor to ``RunFinished``.

    It holds its cursor and nothing else; events in memory are made into objects as it
    reads them, those read back from the store come as objects.
    """

    __slots__ = ("__weakref__", "_batch", "_hub", "_next", "_pos", "_run")

    def __init__(self, hub: RunEvents, first: int = 1) -> None:
        self._hub = hub
        self._next = first
        # Items from the log in memory, or Events read back from the store.
        self._batch: list[Item] | list[Event] = []
        self._pos = 0
        self._run = 0  # events handed out since the loop last ran

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        hub = self._hub
        if self._run >= YIELD_EVERY:
            self._run = 0
            await asyncio.sleep(0)
        while self._pos >= len(self._batch):
            items, behind, changed = hub._take(self._next)
            if behind:
                self._batch, self._pos = await hub._from_store(self._next), 0
                self._run = 0
                continue
            if not items:
                if changed is None:
                    if hub.error is not None:
                        raise hub.error
                    raise StopAsyncIteration
                try:
                    await changed.wait()
                finally:
                    hub._done_waiting()
                self._run = 0
                continue
            self._batch, self._pos = items, 0
        found = self._batch[self._pos]
        self._pos += 1
        self._run += 1
        if self._pos == len(self._batch):
            self._batch, self._pos = [], 0
        event = found if isinstance(found, Event) else _event_of(hub, found)
        self._next = event.seq + 1
        return event
