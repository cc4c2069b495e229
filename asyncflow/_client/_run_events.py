"""A run's stored events, read back (``run.events()``) or followed while another process
runs it (``run.aevents(follow=True)``).

Following polls the store on one long-lived read connection. Each poll costs a
``PRAGMA data_version``, a number SQLite changes on a connection whenever another connection
(any process, WAL or not) commits to the file, and reads no table: only when it changed are
the new events read, together with the run's row, in one snapshot. Polls come every
:data:`POLL_MIN` seconds after a change, backing off by half again each quiet poll to
:data:`POLL_MAX`. Following ends after ``RunFinished``; or when the run's row says it has
ended with no ``RunFinished`` stored (a run recorded before asyncflow kept events); or when
the run is found crashed (its process is gone, see ``_store._lease``), checked at least every
:data:`CRASH_CHECK` seconds while nothing changes.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator

import aiosqlite
import anyio

from .._aio import shared_read
from .._errors import UsageError
from .._store import _queries as q
from .._store._event_reads import (
    ALL_EVENTS,
    EVENT_ROWS,
    READER_EVENTS,
    YIELD_EVERY,
    decode_rows,
    event_items,
    events_query,
)
from .._store._events import Event, RunFinished, make_event
from .._store._lease import run_crash
from .._store._plans import Plan, Rows, record_error
from .._store._rows import RunRow
from ._handle import StoreHandle, aconnect, adrive
from ._messages import missing_run_plan, run_gone_plan

__all__ = ["POLL_MAX", "POLL_MIN", "aread_events", "check_after", "read_events"]

POLL_MIN = 0.005
POLL_MAX = 0.1
CRASH_CHECK = 1.0


def check_after(after: object) -> int:
    """``after`` of ``events()``/``aevents()``: the seq of the last event a reader has, 0 for
    none (the one rule for it).

    :raises UsageError: not an int ≥ 0.
    """
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise UsageError(
            f"events(after={after!r}): after is the seq of the last event you have (an int, "
            "0 or more; 0 reads from the first event), such as ev.seq or an SSE client's "
            "Last-Event-ID read with int()."
        )
    return after


def read_events(handle: StoreHandle, row: RunRow, after: int = 0) -> list[Event]:
    """Every stored event of the run ``row`` after seq ``after``, in order. Blocking.

    :raises NotFoundError: the run is no longer in the store (gc deleted it).
    """
    out: list[Event] = []
    first = after + 1
    while events := _some(handle, row, first, ALL_EVENTS):
        out.extend(events)
        first = events[-1].seq + 1
    return out


def _state(row: RunRow, first: int) -> Plan[tuple[Rows, RunRow | None]]:
    # The events' rows from ``first`` on (about READER_EVENTS events) and the run's row, in one
    # snapshot: a row that says the run ended comes with every event its end committed.
    found = yield events_query(row.id, first, EVENT_ROWS, READER_EVENTS)
    now = yield from q.run(row.flow, row.id)
    return found, now


def _made(row: RunRow, first: int, found: Rows, path: str) -> list[Event]:
    # In a worker thread: decoding and making the Events of a read takes milliseconds, which
    # the event loop must not wait for.
    try:
        items = decode_rows(row.id, first, found)
    except (TypeError, ValueError) as exc:
        raise record_error(exc, path) from exc
    run = str(row.id)
    return [make_event(item, row.flow, run) for item in items]


def _some(handle: StoreHandle, row: RunRow, first: int, events: int = READER_EVENTS) -> list[Event]:
    # Blocking (a reader on an event loop calls it in a worker thread): about ``events``
    # events from seq ``first`` on; none at the end, or NotFoundError if the run is gone.
    items = handle.run(event_items(row.id, first, EVENT_ROWS, events))
    if not items:
        error = handle.run(run_gone_plan(row.flow, row.id, handle.path))
        if error is not None:
            raise error
    run = str(row.id)
    return [make_event(item, row.flow, run) for item in items]


# The reads in progress, by thread (an event loop), store, run and first seq: readers started
# together (200 clients of a web service) share each read and its Event objects.
_reads: dict[tuple[int, str, int, int], asyncio.Future[list[Event]]] = {}


async def _shared_some(handle: StoreHandle, row: RunRow, first: int) -> list[Event]:
    key = (threading.get_ident(), handle.path, row.id, first)
    return await shared_read(_reads, key, lambda: _some(handle, row, first))


async def aread_events(
    handle: StoreHandle, row: RunRow, follow: bool, after: int = 0
) -> AsyncIterator[Event]:
    """The run's stored events after seq ``after``, in order; with ``follow``, then those
    stored later, until the run ends (see the module doc)."""
    first = after + 1
    if not follow:
        # The handle's own connection, in a worker thread: many readers of one store (200
        # clients of a web service) then cost no connection and no thread each.
        while events := await _shared_some(handle, row, first):
            for n, event in enumerate(events, 1):
                yield event
                if isinstance(event, RunFinished):
                    return
                if n % YIELD_EVERY == 0:
                    await anyio.sleep(0)  # let the loop run: see YIELD_EVERY
            first = events[-1].seq + 1
        return
    async with aconnect(handle.path, handle._checked) as conn:
        version = None
        while True:
            if version is None:
                version = await _data_version(conn)
            found, now = await adrive(conn, _state(row, first), handle.path)
            events = []
            if found:
                events = await anyio.to_thread.run_sync(_made, row, first, found, handle.path)
            for n, event in enumerate(events, 1):
                yield event
                if isinstance(event, RunFinished):
                    return
                if n % YIELD_EVERY == 0:
                    await anyio.sleep(0)  # let the loop run: see YIELD_EVERY
            if events:
                first = events[-1].seq + 1
                continue  # there may be more rows than one read takes
            if now is None:
                raise await adrive(
                    conn, missing_run_plan(row.flow, row.id, handle.path), handle.path
                )
            if now.status != "running" or run_crash(now):
                return
            version = await _changed(conn, version)


async def _data_version(conn: aiosqlite.Connection) -> int:
    rows = await conn.execute_fetchall("PRAGMA data_version")
    return int(next(iter(rows))[0])


async def _changed(conn: aiosqlite.Connection, version: int) -> int:
    """Wait until another connection commits (the new data_version), or :data:`CRASH_CHECK`
    seconds have passed (the same one)."""
    delay, since = POLL_MIN, time.monotonic()
    while True:
        await anyio.sleep(delay)
        now = await _data_version(conn)
        if now != version or time.monotonic() - since >= CRASH_CHECK:
            return now
        delay = min(POLL_MAX, delay * 1.5)
