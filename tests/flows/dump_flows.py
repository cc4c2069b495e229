"""Flows whose values make ``dump`` work hard: a value that pickles while the flow runs and
refuses later (``PicklesOnce.REFUSE``), a value whose ``repr()`` raises."""

from __future__ import annotations

from typing import Any

from asyncflow import FlowSpec, step


class PicklesOnce:
    """Pickles until a test sets ``REFUSE`` (as a value holding a lock or a socket would)."""

    REFUSE = False

    def __reduce__(self) -> tuple[Any, ...]:
        if PicklesOnce.REFUSE:
            raise TypeError("cannot pickle a PicklesOnce any more")
        return (PicklesOnce, ())


class NoRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


class DumpOnceFlow(FlowSpec):
    @step
    def start(self) -> None:
        self.once = PicklesOnce()
        self.norepr = NoRepr()
        self.next(self.end)

    @step
    def end(self) -> None:
        pass
