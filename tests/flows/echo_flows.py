"""Flows whose steps write what a terminal echo finds hard: bytes, lone surrogates, carriage
returns; and one that looks at its own sys.stdout."""

from __future__ import annotations

import sys

from asyncflow import FlowSpec, step


class BytesFlow(FlowSpec):
    """Writes bytes to sys.stdout.buffer between text writes, as libraries do."""

    @step
    def start(self) -> None:
        print("text first")
        sys.stdout.buffer.write(b"bad utf8 \xff\xfe end\n")
        euro = "\u20ac".encode()
        sys.stdout.buffer.write(b"split " + euro[:1])  # a character split in two writes
        sys.stdout.buffer.write(euro[1:] + b" whole\n")
        sys.stdout.buffer.flush()
        sys.stdout.flush()
        sys.stderr.buffer.write(b"on stderr \xc3\x28\n")
        print("text last")
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class StreamLookFlow(FlowSpec):
    """Records what a step sees of its sys.stdout, and uses writelines."""

    @step
    def start(self) -> None:
        out = sys.stdout
        self.encoding = out.encoding
        self.errors = out.errors
        self.isatty = out.isatty()
        self.writable = out.writable()
        self.line_buffering = out.line_buffering
        self.fileno = out.fileno()
        out.writelines(["one\n", "two\n"])
        self.buffer_writable = out.buffer.writable()
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class SurrogateFlow(FlowSpec):
    """Prints a lone surrogate (a file name decoded with surrogateescape, say)."""

    @step
    def start(self) -> None:
        print("name \udcff and \ud800 end")
        print("after it")
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class ReturnFlow(FlowSpec):
    """Prints lines holding carriage returns, as progress bars do."""

    @step
    def start(self) -> None:
        print("carriage\rRETURN overwrites")
        sys.stdout.write("\r 10%")
        sys.stdout.write("\r 20%")
        sys.stdout.write("\r100%\n")
        sys.stdout.write("windows\r")
        sys.stdout.write("\nline\r\n")
        sys.stdout.write("last\r")
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class ChattyFlow(FlowSpec):
    """A plain step printing many lines."""

    @step
    def start(self) -> None:
        for i in range(200):
            print(f"line {i}")
        sys.stdout.flush()  # a flush of a broken echo fails nothing either
        self.next(self.end)

    @step
    def end(self) -> None:
        pass
