"""``ShapeFlow`` of ``spin_flows`` after an edit: a step ``mid`` now runs before ``end``."""

from __future__ import annotations

from asyncflow import FlowSpec, step


class ShapeFlow(FlowSpec):
    """start -> mid -> end."""

    @step
    def start(self) -> None:
        self.x = 1
        self.next(self.mid)

    @step
    def mid(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass
