"""Flows that trigger the Config errors of docs/errors.md (tests/test_error_catalogue.py)."""

from __future__ import annotations

import datetime
from typing import Any

from asyncflow import Config, FlowSpec, config_expr, retry, step


def dated(text: str) -> dict[str, Any]:
    """A parser whose value holds a datetime: stored pickled, not as plain data."""
    return {"when": datetime.datetime(2026, 1, 1), "text": text}


def refuses(text: str) -> dict[str, Any]:
    raise ValueError("this parser refuses everything")


class Configured(FlowSpec):
    """One config, read from a file given by the test (``config=``, or the default)."""

    cfg = Config("cfg", default_value={"lr": 0.1})
    needed = Config("needed", required=False)

    @retry(times=config_expr("cfg.get('retries', 0)"))
    @step
    def start(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class NeedsRetries(FlowSpec):
    cfg = Config("cfg", default_value={"lr": 0.1})

    @retry(times=config_expr("cfg.retries"))
    @step(start=True, end=True)
    def only(self) -> None:
        pass


class Required(FlowSpec):
    cfg = Config("cfg", required=True)

    @step(start=True, end=True)
    def only(self) -> None:
        pass


class Parsed(FlowSpec):
    cfg = Config("cfg", default_value="x", parser=refuses)

    @step(start=True, end=True)
    def only(self) -> None:
        pass


class ParsedByName(FlowSpec):
    cfg = Config("cfg", default_value="x", parser="tests.flows.config_catalogue.nothing_here")

    @step(start=True, end=True)
    def only(self) -> None:
        pass


class Dated(FlowSpec):
    """Its config is pickled (a datetime); a config_expr then cannot read it on resume."""

    cfg = Config("cfg", default_value="now", parser=dated)

    @retry(times=config_expr("len(cfg.text) - 3"))
    @step
    def start(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        raise RuntimeError("fails, to be resumed")


class ChangesConfig(FlowSpec):
    cfg = Config("cfg", default_value={"lr": 0.1})

    @step(start=True, end=True)
    def only(self) -> None:
        self.cfg["lr"] = 1.0


class AssignsConfig(FlowSpec):
    cfg = Config("cfg", default_value={"lr": 0.1})

    @step(start=True, end=True)
    def only(self) -> None:
        self.cfg = {"lr": 1.0}


class ReadsMissingKey(FlowSpec):
    cfg = Config("cfg", default_value={"lr": 0.1})

    @step(start=True, end=True)
    def only(self) -> None:
        print(self.cfg.momentum)


class ForgetsMerge(FlowSpec):
    @step
    def start(self) -> None:
        self.weights = [1.0]
        self.next(self.a, self.b)

    @step
    def a(self) -> None:
        self.next(self.join)

    @step
    def b(self) -> None:
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        print(self.weights)
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class FailsBeforeConfig(FlowSpec):
    """Fails in start; its subclass ``NowRequiresConfig`` is the same flow edited to declare
    a required Config before it is resumed."""

    @step
    def start(self) -> None:
        if not hasattr(self, "cfg"):
            raise RuntimeError("fails, to be resumed")
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class NowRequiresConfig(FailsBeforeConfig):
    cfg = Config("cfg", required=True)
