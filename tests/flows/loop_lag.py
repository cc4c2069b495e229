"""Flows for the loop-lag regression test: a coroutine step that reads and sets large values."""

from __future__ import annotations

from asyncflow import FlowSpec, Parameter, step

SIZE = 200 << 20


class Bulky:
    """A user's object holding a large payload: stored with the pickle codec."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload


class BigInCoroutine(FlowSpec):
    kind = Parameter("kind", default="bytes")

    @step
    def start(self) -> None:
        data = bytes(SIZE)  # calloc: making it costs nothing
        self.big = data if self.kind == "bytes" else Bulky(data)
        self.next(self.touch)

    @step
    async def touch(self) -> None:
        big = self.big
        self.size = len(big if isinstance(big, bytes) else big.payload)
        made = bytes(SIZE + 1)
        self.made = made if self.kind == "bytes" else Bulky(made)
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class SharedEarly(FlowSpec):
    """Equal large values under two names and in two inputs: each read its own copy."""

    @step
    def start(self) -> None:
        import numpy as np

        self.a = np.zeros(1 << 18)  # 2 MB: read, checked and decoded before the step starts
        self.b = np.zeros(1 << 18)
        self.box = Bulky(bytes(2 << 20))
        self.next(self.left, self.right)

    @step
    def left(self) -> None:
        self.next(self.join)

    @step
    def right(self) -> None:
        self.next(self.join)

    @step
    async def join(self, inputs: object) -> None:
        self.merge_artifacts(inputs)
        self.a[0] = 1.0
        first, second = inputs[0], inputs[1]  # type: ignore[index]
        first.a[1] = 2.0
        self.seen = [
            float(self.b[0]),
            float(second.a[1]),
            float(first.b[1]),
            self.box is not first.box and first.box is not second.box,
            self.a is not first.a,
        ]
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class ReadByName(FlowSpec):
    """A coroutine step that reads artifacts its source does not name."""

    @step
    def start(self) -> None:
        self.first = bytes(2 << 20)
        self.second = [1, 2, 3]
        self.next(self.use)

    @step
    async def use(self) -> None:
        import anyio.to_thread

        # Not named in the source, so not read before the step: read here, in a thread...
        big = await anyio.to_thread.run_sync(getattr, self, "fir" + "st")
        # ...or on the loop (a small value: cheap).
        small = getattr(self, "sec" + "ond")
        self.seen = [len(big), small]
        self.next(self.end)

    @step
    def end(self) -> None:
        pass
