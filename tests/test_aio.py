"""``_aio.shared_read``: readers of the same thing at once share one read in a worker thread
(many clients of one run's events read the store once, not once each)."""

from __future__ import annotations

import asyncio
import threading

import anyio
import pytest

from asyncflow._aio import shared_read

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_callers_asking_for_the_same_key_at_once_share_one_read() -> None:
    calls: list[int] = []
    gate = threading.Event()

    def read() -> list[int]:
        calls.append(1)
        gate.wait(5)
        return [1, 2, 3]

    reads: dict[str, asyncio.Future[list[int]]] = {}
    results: list[list[int]] = []

    async def reader() -> None:
        results.append(await shared_read(reads, "k", read))

    async with anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(reader)
        await anyio.sleep(0.05)
        gate.set()
    assert len(calls) == 1 and results == [[1, 2, 3]] * 50
    assert reads == {}  # nothing left behind: a later caller reads again
    assert await shared_read(reads, "k", read) == [1, 2, 3] and len(calls) == 2


async def test_a_failed_read_raises_to_every_caller_waiting_for_it() -> None:
    gate = threading.Event()
    calls: list[int] = []

    def fail() -> int:
        calls.append(1)
        gate.wait(5)
        raise ValueError("damaged")

    reads: dict[str, asyncio.Future[int]] = {}
    errors: list[str] = []

    async def reader() -> None:
        try:
            await shared_read(reads, "k", fail)
        except ValueError as exc:
            errors.append(str(exc))

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(reader)
        await anyio.sleep(0.05)
        gate.set()
    assert len(calls) == 1 and errors == ["damaged"] * 5 and reads == {}
