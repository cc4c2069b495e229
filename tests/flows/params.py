"""Flows with parameters and IncludeFiles, for the tests of run(**parameters)."""

from __future__ import annotations

from pathlib import Path

from asyncflow import FlowSpec, IncludeFile, JSONType, Parameter, step


class TypedParamsFlow(FlowSpec):
    """One parameter of each kind; start records what it saw and of which type."""

    count = Parameter("count", default=1)
    ratio = Parameter("ratio", default=0.5)
    flag = Parameter("flag", default=False)
    label = Parameter("label", default="x")
    cfg = Parameter("cfg", type=JSONType, default='{"k": 1}')
    lr = Parameter("learning_rate", default=0.1, help="named unlike its attribute")
    maybe = Parameter("maybe", type=int)

    @step
    def start(self) -> None:
        self.seen = {
            "count": self.count,
            "ratio": self.ratio,
            "flag": self.flag,
            "label": self.label,
            "cfg": self.cfg,
            "lr": self.lr,
            "maybe": self.maybe,
        }
        self.types = {name: type(value).__name__ for name, value in self.seen.items()}
        self.next(self.end)

    @step
    async def end(self) -> None:
        self.cfg_in_end = self.cfg


class RequiredParamFlow(FlowSpec):
    """``needed`` is required; start writes a marker file to prove it ran."""

    needed = Parameter("needed", type=int, required=True)
    marker = Parameter("marker", default="")

    @step
    def start(self) -> None:
        Path(self.marker).write_text(f"ran with {self.needed}")
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class IncludeFlow(FlowSpec):
    """A text and a binary IncludeFile, both with defaults relative to the working directory."""

    text = IncludeFile("text", default="notes.txt", is_text=True)
    raw = IncludeFile("raw", default="blob.bin", is_text=False)
    marker = Parameter("marker", default="")

    @step
    def start(self) -> None:
        if self.marker:
            Path(self.marker).write_text("ran")
        self.text_seen = self.text
        self.raw_seen = self.raw
        self.next(self.end)

    @step
    async def end(self) -> None:
        self.text_in_end = self.text
