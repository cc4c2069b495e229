"""Flows with Configs (tests/test_config.py). ``settings.json`` sits next to this file."""

from __future__ import annotations

import os
from typing import Any

from asyncflow import (
    Config,
    FlowSpec,
    Parameter,
    config_expr,
    current,
    executor,
    kubernetes,
    retry,
    step,
    timeout,
)


class SettingsFlow(FlowSpec):
    """Reads its config everywhere: a foreach, a join, the end; records what it saw."""

    cfg = Config("cfg", default="settings.json", default_value={"source": "default_value"})
    extra = Config("extra", default_value={"nested": {"deep": [1, {"k": "v"}]}})
    alpha = Parameter("alpha", default=1)

    @step
    def start(self) -> None:
        self.seen_start = self.cfg.to_dict()
        self.items = list(self.cfg["items"]) if "items" in self.cfg else [1, 2]
        self.next(self.work, foreach="items")

    @step
    def work(self) -> None:
        self.seen_work = self.cfg.source
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.seen_join = [i.seen_work for i in inputs]
        self.deep = self.extra.nested.deep[1].k
        self.next(self.end)

    @step
    async def end(self) -> None:
        self.seen_end = self.cfg["source"]
        self.params = list(current.parameter_names or ())


class WritesConfig(FlowSpec):
    """Tries each way of changing a config inside a step; records each error."""

    cfg = Config("cfg", default_value={"lr": 0.1, "layers": [1, 2], "opt": {"name": "sgd"}})

    @step
    def start(self) -> None:
        attempts = {
            "setattr": lambda: setattr(self.cfg, "lr", 1),
            "setitem": lambda: self.cfg.__setitem__("lr", 1),
            "update": lambda: self.cfg.update(lr=1),
            "nested": lambda: self.cfg.opt.__setitem__("name", "adam"),
            "list": lambda: self.cfg.layers.append(3),  # type: ignore[attr-defined]
            "assign": lambda: setattr(self, "cfg", {}),
            "pop": lambda: self.cfg.pop("lr"),
            "missing": lambda: self.cfg.momentum,
        }
        self.errors = {}
        for name, attempt in attempts.items():
            try:
                attempt()
            except Exception as exc:
                self.errors[name] = f"{type(exc).__name__}: {exc}"
        self.after = self.cfg.to_dict()
        self.copy = self.cfg.to_dict()
        self.copy["lr"] = 5  # a copy may change
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class RetriesFromConfig(FlowSpec):
    """@retry and @timeout read the config when each run starts."""

    cfg = Config("cfg", default_value={"retries": 1, "seconds": 30})

    @retry(times=config_expr("cfg.retries"))
    @timeout(seconds=cfg.seconds)
    @step
    def start(self) -> None:
        if current.retry_count < self.cfg.retries:
            raise RuntimeError(f"attempt {current.retry_count} fails on purpose")
        self.attempts = current.retry_count + 1
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class ConfigInAProcess(FlowSpec):
    """A step on the process executor reads the config too."""

    cfg = Config("cfg", default_value={"factor": 3, "nested": {"k": [1, 2]}})

    @executor("process")
    @step
    def start(self) -> None:
        self.product = self.cfg.factor * 2
        self.kind = type(self.cfg).__name__
        self.nested = self.cfg.nested.k[1]
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


def int_keyed(text: str) -> dict[Any, Any]:
    """A parser (a YAML reader, say) whose object has an int key."""
    return {"ok": True, "by_id": {7: text}}


class IntKeyedParser(FlowSpec):
    cfg = Config("cfg", default_value="x", parser=int_keyed)

    @step(start=True, end=True)
    def only(self) -> None:
        pass


class PlacedByConfig(FlowSpec):
    """@kubernetes and @executor arguments read from the config when each run starts."""

    cfg = Config("cfg", default_value={"where": "thread", "cpu": 2})

    @kubernetes(cpu=config_expr("cfg.cpu"))
    @step
    def start(self) -> None:
        self.next(self.work)

    @executor(config_expr("cfg.where"))
    @step
    def work(self) -> None:
        self.pid = os.getpid()
        self.next(self.end)

    @step
    def end(self) -> None:
        pass
