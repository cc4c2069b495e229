"""A foreach whose split runs again on resume, with other elements than the origin's.

The origin's split hands out :class:`Box` objects (pickled by reference to this module). A
test then removes ``Box`` and switches :data:`ITEMS`: the resume cannot decode the origin's
elements, so the split runs again and hands out plain ints; every foreach task must then run
again, not be cloned from the origin.
"""

from __future__ import annotations

from typing import Any

from asyncflow import FlowSpec, step

ITEMS = {"kind": "boxes"}


class Box:
    def __init__(self, value: int) -> None:
        self.value = value


class ResplitFlow(FlowSpec):
    @step
    def start(self) -> None:
        self.next(self.split)

    @step
    def split(self) -> None:
        if ITEMS["kind"] == "boxes":
            self.items: list[Any] = [Box(1), Box(2), Box(3)]
        else:
            self.items = [4, 5]
        self.next(self.body, foreach="items")

    @step
    def body(self) -> None:
        item = self.input
        self.out = (item if isinstance(item, int) else item.value) * 10
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.outs = [i.out for i in inputs]
        self.next(self.end)

    @step
    def end(self) -> None:
        pass
