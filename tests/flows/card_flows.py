"""Flows with cards, for tests/test_cards_store.py (and the error catalogue).

``CardFan`` also runs as a script (``python tests/flows/card_flows.py run --marker PATH``) in a
child process that the test kills: its ``each`` task of index ``HANG`` writes ``marker`` and,
when ``$CARDFLOW_HANG`` is set, sleeps until then, while the other tasks commit their cards.
"""

from __future__ import annotations

import os
import time
from typing import Any

from asyncflow import FlowSpec, Parameter, card, current, step
from asyncflow.cards import Artifact, Image, Markdown, Table

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(40))
JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + bytes(30)
GIF = b"GIF89a" + bytes(20)
SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><circle r="4"/></svg>'
HANG = 5


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


class KindsFlow(FlowSpec):
    """Every kind of component, and every kind of component that cannot be stored."""

    @card(id="extra", type="notes")
    @card
    @step
    def start(self) -> None:
        current.card.append(Markdown("# Scores <b>&</b>"))
        current.card.append(Table([[0.91, "a"], [None, [1, 2]]], headers=["train", "test"]))
        current.card.append(Table([[Markdown("*cell*"), "x" * 500]]))
        for data, label in ((PNG, "png"), (JPEG, "jpeg"), (GIF, "gif"), (SVG, "svg")):
            current.card.append(Image(data, label=label))
        current.card.append(Artifact({"k": list(range(3))}, name="mapping"))
        current.card.append(Artifact(list(range(10_000))))
        # Each of these becomes an error component; the step still succeeds.
        current.card.append(Image(b"GIF-but-not-really"))
        current.card.append(Table([[1, BadRepr()]]))
        current.card.append("a plain string")
        current.card.append(Markdown("x" * ((1 << 20) + 1)))
        current.card.append(Table([[0] * 1000] * 101))
        current.card.append(Image(PNG + bytes(9 << 20)))
        current.card["extra"].append(Markdown("notes"))
        self.done = True
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class FailingCardFlow(FlowSpec):
    """A @card step that fails after adding to its card."""

    fail = Parameter("fail", default=True)

    @step
    def start(self) -> None:
        self.next(self.boom)

    @card
    @step
    def boom(self) -> None:
        current.card.append(Markdown("before the failure"))
        if self.fail:
            raise ValueError("the step failed")
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class CardFan(FlowSpec):
    """start -> each (foreach, @card) -> join -> end. Every task of ``each`` but the last has
    an equal card; ``$CARDFLOW_FAIL`` makes ``join`` fail (to resume); ``marker`` makes task
    HANG hang (with ``$CARDFLOW_HANG``)."""

    width = Parameter("width", default=4)
    marker = Parameter("marker", default="")

    @card
    @step
    def start(self) -> None:
        current.card.append(Markdown(f"fan of {self.width}"))
        self.items = list(range(self.width))
        self.next(self.each, foreach="items")

    @card
    @step
    def each(self) -> None:
        last = self.input == self.width - 1
        current.card.append(Markdown("the last" if last else "the same card"))
        if self.marker:
            current.card.append(Image(PNG + bytes(str(self.input), "ascii") * 300_000))
            if self.input == HANG:
                with open(self.marker, "w") as fh:
                    fh.write(str(os.getpid()))
                if os.environ.get("CARDFLOW_HANG"):
                    time.sleep(600)
            else:
                time.sleep(0.05)
        self.value = self.input
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        if os.environ.get("CARDFLOW_FAIL"):
            raise RuntimeError("join fails on purpose")
        self.total = sum(i.value for i in inputs)
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


if __name__ == "__main__":
    CardFan()
