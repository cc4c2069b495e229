"""Flows fed bad input on purpose: class attributes set in a step, odd artifact names, lone
surrogates, open files, huge ints, terminal escapes, deep JSON and odd IncludeFiles.

Each flow's ``mode`` parameter picks what its start step does. Run as a script, the first
argument names the flow: ``python bad_input.py JsonFlow run --cfg '[1]'``.
"""

from __future__ import annotations

import io
import socket
import sys
from typing import Any

from asyncflow import FlowSpec, IncludeFile, JSONType, Parameter, catch, step

ESCAPES = "\x1b[31mred\x1b[0m \x1b]0;title\x07 \x9b2J"  # colour, window title, C1 CSI


class ConstFlow(FlowSpec):
    """Class attributes that are not parameters: constants, readable in every step."""

    x = 1
    count = 0
    mode = Parameter("mode", default="read")

    @step
    def start(self) -> None:
        if self.mode == "set":
            setattr(self, "x", 2)  # noqa: B010 (not in the source's assignments: runtime)

        class Local:  # its own self: setting x here is no concern of the flow's
            def __init__(self) -> None:
                self.x = "local"

        self._local = Local()
        self.next(self.end)

    @step
    def end(self) -> None:
        self.seen = (self.x, self.count)


class ConstWriteFlow(FlowSpec):
    """Sets a class attribute in its source: refused before anything runs."""

    x = 1

    @step
    def start(self) -> None:
        self.y = 0
        self.x = 2
        self.next(self.end)

    @step
    def end(self) -> None:
        print(self.x)


class ConstAugmentFlow(FlowSpec):
    """``self.count += 1`` on a class attribute ``count = 0``."""

    count = 0

    @step
    def start(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        self.count += 1


class ConstCatchFlow(FlowSpec):
    """``@catch(var=...)`` naming a class attribute."""

    error = None

    @catch(var="error")
    @step
    def start(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class NamesFlow(FlowSpec):
    """Artifacts named in ways no later step could read as ``self.<name>``."""

    mode = Parameter("mode", default="empty")

    @step
    def start(self) -> None:
        if self.mode == "empty":
            setattr(self, "", 1)
        elif self.mode == "space":
            setattr(self, "a b", 1)
        elif self.mode == "dict":
            self.__dict__[""] = 1  # behind __setattr__'s back
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class SurrogateFlow(FlowSpec):
    """Lone surrogates in values, dict keys, printed output and an exception."""

    mode = Parameter("mode", default="store")

    @step
    def start(self) -> None:
        self.s = "\ud800"
        self.d = {"k\udcff": [("\ud800x", {"\udfff": b"\xff"})], "plain": "ok"}
        self.keys = {"\udc80": 1, ("t\ud800",): frozenset({"\ud801"})}
        print("printed \ud800 here")
        print("and \udcff to stderr", file=sys.stderr)
        if self.mode == "raise":
            raise ValueError("bad \ud800 value")
        self.next(self.end)

    @step
    def end(self) -> None:
        self.back = (self.s, self.d)


class HandleFlow(FlowSpec):
    """Handles (files, sockets) assigned to artifacts, and in-memory buffers that are fine."""

    mode = Parameter("mode", default="file")
    path = Parameter("path", default=__file__)

    @step
    def start(self) -> None:
        if self.mode == "file":
            self.f = keep(open(self.path))  # noqa: SIM115
        elif self.mode == "binary":
            self.f = keep(open(self.path, "rb"))  # noqa: SIM115
        elif self.mode == "nested":
            self.found = {"files": [keep(open(self.path))]}  # noqa: SIM115
        elif self.mode == "socket":
            self.sock = keep(socket.socket())
        elif self.mode == "buffers":
            self.buf = io.BytesIO(b"bytes")
            self.text = io.StringIO("text")
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


OPENED: list[Any] = []  # every handle HandleFlow opened, for the test to close


def keep(handle: Any) -> Any:
    OPENED.append(handle)
    return handle


class BigIntFlow(FlowSpec):
    """Ints beyond Python's 4300-digit limit for printing."""

    @step
    def start(self) -> None:
        self.big = 10**5000 + 7
        self.nested = {"n": [-(10**6000)]}
        self.huge = 3**300_000  # ~143,000 digits: printed in hex
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class EscapeFlow(FlowSpec):
    """Terminal escape sequences in a step's output and in its error."""

    @step
    def start(self) -> None:
        print("out " + ESCAPES)
        self.label = ESCAPES
        self.next(self.end)

    @step
    def end(self) -> None:
        raise RuntimeError("boom " + ESCAPES)


class JsonFlow(FlowSpec):
    """A JSON parameter and an int one."""

    cfg = Parameter("cfg", type=JSONType, default="{}")
    count = Parameter("count", default=1)
    epochs = Parameter("epochs", default=1)

    @step
    def start(self) -> None:
        self.seen = (self.cfg, self.count, self.epochs)
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class IncludeFlow(FlowSpec):
    """An IncludeFile of at most 1 KiB."""

    data = IncludeFile("data", is_text=False, max_bytes=1024)

    @step
    def start(self) -> None:
        self.size = len(self.data)
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class ClashFlow(FlowSpec):
    """A parameter named like the command line's --store."""

    where = Parameter("store", default="here")

    @step
    def start(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


FLOWS: dict[str, Any] = {
    "ClashFlow": ClashFlow,
    "JsonFlow": JsonFlow,
    "IncludeFlow": IncludeFlow,
    "EscapeFlow": EscapeFlow,
}

if __name__ == "__main__":
    FLOWS[sys.argv.pop(1)].main()
