"""Async helpers shared by the runtime and the client (a layer below both, above the store).

:func:`shared_read`: a blocking read done once, in a worker thread, for every caller on an
event loop that asks for the same thing meanwhile (many readers of one run's events, say).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, MutableMapping
from typing import TypeVar

import anyio.to_thread

__all__ = ["shared_read"]

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


async def shared_read(
    reads: MutableMapping[K, asyncio.Future[T]], key: K, read: Callable[[], T]
) -> T:
    """``read()`` in a worker thread, or the result of the same read another caller started
    (``reads[key]``, on this event loop). A caller cancelled while reading leaves the read
    to the next caller still waiting; a read's exception is raised to every caller.
    """
    while (shared := reads.get(key)) is not None:
        await asyncio.wait([shared])
        if not shared.cancelled():
            return shared.result()
        # The caller reading it was cancelled: read it here (unless another caller does).
    mine: asyncio.Future[T] = asyncio.get_running_loop().create_future()
    reads[key] = mine
    try:
        result = await anyio.to_thread.run_sync(read)
    except Exception as exc:
        mine.set_exception(exc)
        mine.exception()  # retrieved: whoever waits for it raises it too
        raise
    except BaseException:
        mine.cancel()
        raise
    else:
        mine.set_result(result)
        return result
    finally:
        del reads[key]
