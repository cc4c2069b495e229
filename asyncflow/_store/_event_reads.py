"""The read plans of a run's events (see ``_events`` for the rows' form)."""

from __future__ import annotations

from ._events import Item, decode_chunk
from ._plans import Plan, Query, checked

__all__ = ["EVENT_ROWS", "event_items"]

# Rows read by one plan at most (a row holds the events of one writer batch).
EVENT_ROWS = 256
# The row holding seq ``first`` (the last one starting at or before it) and those after.
_EVENTS_FROM = (
    "SELECT seq, data FROM events WHERE run_id = ? AND seq >= "
    "(SELECT coalesce(max(seq), 0) FROM events WHERE run_id = ? AND seq <= ?) "
    "ORDER BY seq LIMIT ?"
)


def event_items(run_id: int, first: int = 1, rows: int = EVENT_ROWS) -> Plan[list[Item]]:
    """The run's events from seq ``first`` on, in order, each checked; at most those of
    ``rows`` rows (fewer items than asked for then does not mean there are no more: read
    again from the last seq + 1 until the result is empty).

    :raises ValueError: a row is not one asyncflow writes, or rows overlap (the drivers
        turn it into a StoreError naming the file).
    """
    found = yield Query(_EVENTS_FROM, (run_id, run_id, first, rows))
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
