"""The read plans of a run's events (see ``_events`` for the rows' form)."""

from __future__ import annotations

from ._events import Item, decode_chunk
from ._plans import Plan, Query, Rows, checked

__all__ = [
    "ALL_EVENTS",
    "EVENT_ROWS",
    "READER_EVENTS",
    "YIELD_EVERY",
    "decode_rows",
    "event_items",
    "events_query",
]

# Rows read by one plan at most (a row holds the events of one writer batch).
EVENT_ROWS = 256
# Events read at a time by a reader on an event loop (and those of one more row at most: a
# row holds at most 8 KB of them, ``CHUNK_BYTES``).
READER_EVENTS = 512
# Events a reader on an event loop hands out in a row without letting the loop run: each
# costs its reader some 5-10 µs, and every reader that has events to hand out takes its turn
# before the loop comes back to anything else (200 readers x 16 events: about 30 ms).
YIELD_EVERY = 16
# ``events`` of :func:`event_items` for no bound but the rows'.
ALL_EVENTS = 1 << 62

# The row holding seq ``first`` (the last one starting at or before it) and those after.
_EVENTS_FROM = (
    "SELECT seq, data FROM events WHERE run_id = ? AND seq >= "
    "(SELECT coalesce(max(seq), 0) FROM events WHERE run_id = ? AND seq <= ?) "
    "AND seq < ? ORDER BY seq LIMIT ?"
)


def event_items(
    run_id: int, first: int = 1, rows: int = EVENT_ROWS, events: int = ALL_EVENTS
) -> Plan[list[Item]]:
    """The run's events from seq ``first`` on, in order, each checked; at most those of
    ``rows`` rows, and of the rows starting before seq ``first + events`` (fewer items than
    asked for then does not mean there are no more: read
    again from the last seq + 1 until the result is empty).

    :raises ValueError: a row is not one asyncflow writes, or rows overlap (the drivers
        turn it into a StoreError naming the file).
    """
    found = yield events_query(run_id, first, rows, events)
    return decode_rows(run_id, first, found)


def events_query(
    run_id: int, first: int = 1, rows: int = EVENT_ROWS, events: int = ALL_EVENTS
) -> Query:
    """The query of :func:`event_items`, whose rows :func:`decode_rows` decodes (a reader
    on an event loop runs the query on its connection and decodes in a worker thread)."""
    return Query(_EVENTS_FROM, (run_id, run_id, first, first + events, rows))


def decode_rows(run_id: int, first: int, found: Rows) -> list[Item]:
    """The checked items from seq ``first`` on of the rows of :func:`events_query`.

    :raises ValueError: as :func:`event_items`.
    """
    out: list[Item] = []
    last = first - 1
    for seq, data in checked("events", ("seq", "data"), found):
        for item in decode_chunk(seq, data):
            if item[0] < first:
                continue
            if item[0] <= last:
                raise ValueError(f"events rows of run {run_id} overlap at seq {item[0]}")
            last = item[0]
            out.append(item)
    return out
