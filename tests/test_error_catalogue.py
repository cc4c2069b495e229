"""docs/errors.md, line by line: each error is triggered for real, and its message checked.

Every line of the catalogue has a case here (and every case a line): the error has the
documented type, its message matches the documented text (``«…»`` stands for the parts that
vary), names the thing at fault (flow, step, artifact, file) and says what to do. The store
problems are also followed through every entry point: ``run()``, the sync and async client
and both command lines.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

import asyncflow
import asyncflow._store._writer as writer_module
from asyncflow import (
    AsyncflowError,
    Flow,
    FlowSpec,
    IncludeFile,
    Parameter,
    StepFailed,
    StoreError,
    catch,
    retry,
    step,
    timeout,
)
from asyncflow._cli import flow_main
from asyncflow._cli import main as asyncflow_cli
from asyncflow._store._db import PAGE_SIZE, open_writer
from asyncflow._store._manifest import content_digest
from asyncflow._store._sqlerrors import retry_busy
from asyncflow._store._trust import TrustKey
from asyncflow.cards import Image, Markdown, Table
from tests._storefixture import T, sha_of, write_run
from tests.flows import attacker_flows as af_flows
from tests.flows import bad_graphs as bad
from tests.flows import bad_input as bif
from tests.flows import bad_switches as bsw
from tests.flows import card_flows, dump_flows
from tests.flows import catalogue as cf
from tests.flows import config_catalogue as ccf
from tests.flows import start_end_flows as sef
from tests.flows import switch_flows as swf
from tests.flows import trust_flows as tf
from tests.flows.archive_flows import gated_flow
from tests.flows.catalogue import Boom, Chunky, Grows, Pair

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = ROOT / "docs" / "errors.md"
HERE = __file__
BAD_GRAPHS = bad.__file__
FLOWS = cf.__file__


# --- the catalogue as written ---------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """One line of the catalogue: its error type and its message as a regular expression."""

    error: str
    pattern: re.Pattern[str]


def _pattern(text: str) -> re.Pattern[str]:
    parts = re.split(r"«[^»]*»", text)
    return re.compile(".*?".join(re.escape(part) for part in parts), re.DOTALL)


def catalogue() -> dict[str, Line]:
    lines: dict[str, Line] = {}
    row = re.compile(r"^\| ([A-Z]\d{2,3}) \| (.+?) \| ``(.+?)`` \| .+ \|$")
    for text in CATALOGUE.read_text(encoding="utf-8").splitlines():
        found = row.match(text)
        if found:
            entry, error, message = found.groups()
            assert entry not in lines, f"{entry} appears twice in {CATALOGUE}"
            lines[entry] = Line(error.strip("`"), _pattern(message.strip()))
    return lines


# --- the cases ------------------------------------------------------------------------------


class CommandLine(Exception):
    """What a command printed on stderr, and its exit code."""

    def __init__(self, stderr: str, code: int) -> None:
        super().__init__(stderr.strip(), code)
        self.code = code

    def __str__(self) -> str:
        return str(self.args[0])


Raised = tuple[BaseException, tuple[str, ...]]  # the error, and what its message must name
Trigger = Callable[[Path], Awaitable[Raised]]


@dataclass(frozen=True)
class Case:
    trigger: Trigger
    fix: str  # words of the message that say what to do


CASES: dict[str, Case] = {}


def case(entry: str, fix: str) -> Callable[[Trigger], Trigger]:
    def register(trigger: Trigger) -> Trigger:
        assert entry not in CASES, entry
        CASES[entry] = Case(trigger, fix)
        return trigger

    return register


def raised(make: Callable[[], object]) -> BaseException:
    try:
        make()
    except Exception as exc:
        return exc
    raise AssertionError("nothing was raised")


async def run_error(
    flow: type[FlowSpec], tmp: Path, *, store_path: Path | None = None, **params: Any
) -> BaseException:
    """What running ``flow`` raises (in ``tmp``'s store unless ``store_path`` is given)."""
    store = str(store_path) if store_path is not None else store_of(tmp)
    try:
        await flow(store=store, echo=False).run(**params)
    except (AsyncflowError, ValueError) as exc:
        return exc
    raise AssertionError(f"{flow.__name__} ran without an error on {store}")


def store_of(tmp: Path) -> str:
    return str(tmp / "store.db")


# --- D: defining a flow ---------------------------------------------------------------------


@case("D01", fix="put @step directly above the def line")
async def _d01(tmp: Path) -> Raised:
    return raised(lambda: step(staticmethod(print))), ("@step",)


@case("D02", fix="remove the other parameters")
async def _d02(tmp: Path) -> Raised:
    def train(self: Any, inputs: Any, extra: Any) -> None:
        pass

    return raised(lambda: step(train)), ("'train'", HERE)


@case("D03", fix="put @retry above @step")
async def _d03(tmp: Path) -> Raised:
    def helper(self: Any) -> None:
        pass

    return raised(lambda: retry(times=1)(helper)), ("'helper'",)


@case("D04", fix="keep one")
async def _d04(tmp: Path) -> Raised:
    def fetch(self: Any) -> None:
        pass

    once = catch(var="error")(step(fetch))
    return raised(lambda: catch()(once)), ("'fetch'", "@catch", HERE)


@case("D05", fix="must be a whole number >= 0")
async def _d05(tmp: Path) -> Raised:
    return raised(lambda: retry(times=-1)), ("times=-1",)


@case("D06", fix="must be >= 0 and finite")
async def _d06(tmp: Path) -> Raised:
    return raised(lambda: retry(minutes_between_retries=-2)), ("minutes_between_retries=-2",)


@case("D07", fix="must be a number")
async def _d07(tmp: Path) -> Raised:
    return raised(lambda: timeout(seconds="10")), ("@timeout(seconds=...)", "'10'")  # type: ignore[arg-type]


@case("D08", fix="var must name an artifact")
async def _d08(tmp: Path) -> Raised:
    return raised(lambda: catch(var="_error")), ("'_error'",)


@case("D09", fix="give a positive, finite duration")
async def _d09(tmp: Path) -> Raised:
    return raised(lambda: timeout(seconds=0)), ("seconds=0",)


@case("D10", fix="pass type= str, int, float, bool, JSONType")
async def _d10(tmp: Path) -> Raised:
    return raised(lambda: Parameter("config", default={"k": 1})), ("'config'", "{'k': 1}")


@case("D11", fix="pass type= str, int, float, bool, JSONType")
async def _d11(tmp: Path) -> Raised:
    return raised(lambda: Parameter("alpha", type=5)), ("'alpha'", "type=5")


@case("D12", fix="use a codec such as 'utf-8'")
async def _d12(tmp: Path) -> Raised:
    return raised(lambda: IncludeFile("data", encoding="klingon")), ("'data'", "klingon")


@case("D13", fix="use a path")
async def _d13(tmp: Path) -> Raised:
    return raised(lambda: IncludeFile("data", default=42)), ("'data'", "42")  # type: ignore[arg-type]


@case("D81", fix="use a positive whole number of bytes")
async def _d81(tmp: Path) -> Raised:
    return raised(lambda: IncludeFile("data", max_bytes=0)), ("'data'", "max_bytes=0")


@case("D101", fix="must be one of")
async def _d101(tmp: Path) -> Raised:
    return raised(lambda: asyncflow.executor("gpu")), ("'gpu'",)


@case("D102", fix="Make it a plain def")
async def _d102(tmp: Path) -> Raised:
    def define() -> None:
        class AsyncExec(FlowSpec):
            @asyncflow.executor("process")
            @step
            async def start(self) -> None:
                self.next(self.end)

            @step
            def end(self) -> None:
                pass

    return raised(define), ("'process'", "'start'")


@case("D131", fix="write @timeout(seconds=...)")
async def _d131(tmp: Path) -> Raised:
    def fetch(self: Any) -> None:
        pass

    return raised(lambda: timeout(step(fetch))), ("'fetch'", "without a duration", HERE)  # type: ignore[arg-type]


@case("D132", fix='e.g. @executor("process")')
async def _d132(tmp: Path) -> Raised:
    def fetch(self: Any) -> None:
        pass

    return raised(lambda: asyncflow.executor(step(fetch))), ("'fetch'", "'dask'", HERE)  # type: ignore[arg-type]


@case("D133", fix="boto3, s3fs or fsspec")
async def _d133(tmp: Path) -> Raised:
    return raised(lambda: exec("from asyncflow import S3", {})), ("S3", "store file")


@case("D171", fix="write @step(start=True)")
async def _d171(tmp: Path) -> Raised:
    return raised(lambda: step(start="yes")), ("start='yes'",)  # type: ignore[call-overload]


@case("D172", fix="Write what the mutator would add directly")
async def _d172(tmp: Path) -> Raised:
    class AddRetries(asyncflow.FlowMutator):
        pass

    def define() -> None:
        @AddRetries
        class Mutated(FlowSpec):
            @step
            def start(self) -> None:
                self.next(self.end)

            @step
            def end(self) -> None:
                pass

    return raised(define), ("AddRetries", "Mutated", "not support Metaflow's mutators")


@case("D173", fix="Stack the decorators the mutator would add above @step")
async def _d173(tmp: Path) -> Raised:
    class Retried(asyncflow.StepMutator):
        pass

    def fetch(self: Any) -> None:
        pass

    return raised(lambda: Retried(times=2)(step(fetch))), ("Retried", "fetch", HERE)


@case("D161", fix="packages must be a dict")
async def _d161(tmp: Path) -> Raised:
    return raised(lambda: asyncflow.conda(packages=["pandas"])), ("@conda", "['pandas']")


@case("D162", fix="write package names as strings")
async def _d162(tmp: Path) -> Raised:
    return raised(lambda: asyncflow.pypi(packages={3: "1"})), ("@pypi", "3")


@case("D163", fix='write it as a string such as "1.5.3"')
async def _d163(tmp: Path) -> Raised:
    return raised(lambda: asyncflow.pypi_base(packages={"numpy": 1.5})), ("'numpy'", "1.5")


@case("D164", fix="or left out for the Python running the flow")
async def _d164(tmp: Path) -> Raised:
    return raised(lambda: asyncflow.conda(python=3.11)), ("python=3.11",)  # type: ignore[arg-type]


@case("D165", fix="keep one")
async def _d165(tmp: Path) -> Raised:
    twice = asyncflow.conda_base(packages={"numpy": ""})(type("Twice", (_Linear,), {}))
    return raised(lambda: asyncflow.conda_base(python="3.11")(twice)), ("Twice", "@conda_base")


@case("D166", fix="put @pypi_base above `class XFlow(FlowSpec):`")
async def _d166(tmp: Path) -> Raised:
    return raised(lambda: asyncflow.pypi_base(python="3.11")(print)), ("@pypi_base",)


@case("D167", fix='such as "default"')
async def _d167(tmp: Path) -> Raised:
    return raised(lambda: asyncflow.card(type="")), ("type=''",)


@case("D168", fix="or left out")
async def _d168(tmp: Path) -> Raised:
    return raised(lambda: asyncflow.card(id="my card")), ("'my card'",)


@case("D169", fix="options must be a dict")
async def _d169(tmp: Path) -> Raised:
    return raised(lambda: asyncflow.card(options=[1])), ("[1]",)  # type: ignore[arg-type]


@case("D170", fix="positive number of seconds")
async def _d170(tmp: Path) -> Raised:
    return raised(lambda: asyncflow.card(timeout=0)), ("timeout=0",)


@case("D160", fix="give each card of a step its own id")
async def _d160(tmp: Path) -> Raised:
    def report(self: Any) -> None:
        pass

    once = asyncflow.card(id="a")(step(report))
    return raised(lambda: asyncflow.card(id="a")(once)), ("'report'", "id 'a'", HERE)


def _fetch_step() -> Any:
    def fetch(self: Any) -> None:
        pass

    return step(fetch)


@case("D151", fix="leave it out for the default")
async def _d151(tmp: Path) -> Raised:
    return raised(lambda: asyncflow.resources(memory="lots")(_fetch_step())), (
        "memory='lots'",
        "'fetch'",
        HERE,
    )


@case("D152", fix="Make it a plain def")
async def _d152(tmp: Path) -> Raised:
    async def fetch(self: Any) -> None:
        pass

    env = asyncflow.environment(vars={"A": "1"})
    return raised(lambda: env(step(fetch))), ("'fetch'", "async def", HERE)


@case("D153", fix='Remove @executor("thread")')
async def _d153(tmp: Path) -> Raised:
    env = asyncflow.environment(vars={"A": "1"})
    return raised(lambda: asyncflow.executor("thread")(env(_fetch_step()))), ("'fetch'", HERE)


@case("D154", fix="pass a dict of names to string values")
async def _d154(tmp: Path) -> Raised:
    env = asyncflow.environment(vars=["A=1"])
    return raised(lambda: env(_fetch_step())), ("'fetch'", "list")


@case("D155", fix="a non-empty string without '='")
async def _d155(tmp: Path) -> Raised:
    env = asyncflow.environment(vars={"A=B": "1"})
    return raised(lambda: env(_fetch_step())), ("'fetch'", "'A=B'")


@case("D156", fix="environment variables hold strings")
async def _d156(tmp: Path) -> Raised:
    env = asyncflow.environment(vars={"PORT": 8080})
    return raised(lambda: env(_fetch_step())), ("'fetch'", "PORT=8080", "PORT='8080'")


@case("D157", fix="keep one")
async def _d157(tmp: Path) -> Raised:
    once = asyncflow.kubernetes(_fetch_step())
    return raised(lambda: asyncflow.batch(queue="q")(once)), ("'fetch'", "@kubernetes", "@batch")


@case("D158", fix="takes its arguments by name")
async def _d158(tmp: Path) -> Raised:
    return raised(lambda: asyncflow.kubernetes(2, 4096)), ("@kubernetes", "(2, 4096)")


@case("D141", fix='write e.g. @project(name="movies")')
async def _d141(tmp: Path) -> Raised:
    return raised(lambda: asyncflow.project(name="My-Movies")), ("'My-Movies'", "lowercase")


@case("D142", fix="put it directly above `class ...(FlowSpec):`")
async def _d142(tmp: Path) -> Raised:
    class Plain:
        pass

    return raised(lambda: asyncflow.project(name="movies")(Plain)), ("'movies'", "Plain")


@case("D143", fix="keep one")
async def _d143(tmp: Path) -> Raised:
    def define() -> None:
        @asyncflow.project(name="films")
        @asyncflow.project(name="movies")
        class Twice(FlowSpec):
            pass

    return raised(define), ("Twice", "'movies'", "'films'")


@case("D241", fix="write it as you would in a step")
async def _d241(tmp: Path) -> Raised:
    return raised(lambda: asyncflow.config_expr("cfg.")), ("'cfg.'",)


@case("D242", fix="give the expression as text")
async def _d242(tmp: Path) -> Raised:
    return raised(lambda: asyncflow.config_expr("  ")), ("'  '",)


@case("D243", fix="times must be a whole number >= 0")
async def _d243(tmp: Path) -> Raised:
    flow = ccf.Configured(store=store_of(tmp), echo=False, config={"cfg": {"retries": -1}})
    exc = await raised_async(flow.run())
    return exc, ("'start'", "config_expr(\"cfg.get('retries', 0)\")", "times=-1")


# --- P: declaring parameters ----------------------------------------------------------------


def _linear(**attrs: Any) -> type[FlowSpec]:
    """A valid two-step flow class with extra class attributes (parameters)."""
    return type("ParamFlow", (_Linear,), attrs)


class _Linear(FlowSpec):
    @step
    def start(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


@case("P01", fix="rename it")
async def _p01(tmp: Path) -> Raised:
    flow = _linear(size=Parameter("size-mb", default=1))
    return await run_error(flow, tmp), ("'size-mb'", "ParamFlow.size")


@case("P02", fix="remove the '_'")
async def _p02(tmp: Path) -> Raised:
    flow = _linear(_alpha=Parameter("alpha", default=1.0))
    return await run_error(flow, tmp), ("'alpha'", "ParamFlow._alpha")


@case("P03", fix="rename it")
async def _p03(tmp: Path) -> Raised:
    flow = _linear(index=Parameter("index", default=1))
    return await run_error(flow, tmp), ("'index'", "ParamFlow.index")


@case("P04", fix="create a separate Parameter(...) in the class body per attribute")
async def _p04(tmp: Path) -> Raised:
    shared = Parameter("alpha", default=1.0)
    flow = _linear(alpha=shared, beta=shared)
    return await run_error(flow, tmp), ("'alpha'", "ParamFlow.beta")


@case("P05", fix="rename one")
async def _p05(tmp: Path) -> Raised:
    flow = _linear(alpha=Parameter("rate", default=1.0), beta=Parameter("rate", default=2.0))
    return await run_error(flow, tmp), ("'rate'", "ParamFlow.alpha", "ParamFlow.beta")


@case("P06", fix="name each parameter like its attribute")
async def _p06(tmp: Path) -> Raised:
    flow = _linear(alpha=Parameter("beta", default=1.0), beta=Parameter("gamma", default=2.0))
    return await run_error(flow, tmp), ("'beta'", "ParamFlow.alpha", "ParamFlow.beta")


@case("P81", fix="rename it (taken: --executor, --help, --quiet, --store, --tag)")
async def _p81(tmp: Path) -> Raised:
    flow = _linear(where=Parameter("store", default="here"))
    return await run_error(flow, tmp), ("'store'", "ParamFlow.where")


@case("P241", fix="rename it")
async def _p241(tmp: Path) -> Raised:
    return raised(lambda: asyncflow.Config("my-config")), ("'my-config'",)


@case("P242", fix="rename one")
async def _p242(tmp: Path) -> Raised:
    def define() -> None:
        class Clash(FlowSpec):
            alpha = Parameter("alpha", default=1)
            cfg = asyncflow.Config("alpha", default_value={})

    return raised(define), ("'alpha'", "Clash.cfg")


# --- G: the graph ---------------------------------------------------------------------------


@case("G01", fix="define every step with its own def")
async def _g01(tmp: Path) -> Raised:
    return await run_error(bad.Alias, tmp), ("'finish'", "'end'", "Alias", BAD_GRAPHS)


@case("G02", fix="rename the step")
async def _g02(tmp: Path) -> Raised:
    return await run_error(bad.Hides, tmp), ("'helper'", "Base", BAD_GRAPHS)


@case("G03", fix="define the flow in a file")
async def _g03(tmp: Path) -> Raised:
    namespace: dict[str, Any] = {"FlowSpec": FlowSpec, "step": step}
    source = (
        "class Generated(FlowSpec):\n"
        "    @step\n    def start(self):\n        self.next(self.end)\n"
        "    @step\n    def end(self):\n        pass\n"
    )
    exec(compile(source, "<generated>", "exec"), namespace)
    return await run_error(namespace["Generated"], tmp), ("'start'", "<generated>")


@case("G04", fix="import it again")
async def _g04(tmp: Path) -> Raised:
    # A flow file edited after it was imported: its steps' lines now hold other code.
    import importlib.util

    path = tmp / "edited_flow.py"
    path.write_text(
        "from asyncflow import FlowSpec, step\n\n\nclass Edited(FlowSpec):\n"
        "    @step\n    def start(self):\n        self.next(self.end)\n\n"
        "    @step\n    def end(self):\n        pass\n",
        encoding="utf-8",
    )
    spec = importlib.util.spec_from_file_location("g04_edited_flow", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path.write_text("x = 1\n" * 12 + "# edited\n", encoding="utf-8")
    return await run_error(module.Edited, tmp), ("'start'", str(path))


@case("G05", fix="a step must end with exactly one unconditional self.next(...)")
async def _g05(tmp: Path) -> Raised:
    return await run_error(bad.Branchy, tmp), ("'start'", BAD_GRAPHS)


@case("G06", fix="a step must end with exactly one unconditional self.next(...)")
async def _g06(tmp: Path) -> Raised:
    return await run_error(bad.Twice, tmp), ("'start'", BAD_GRAPHS)


@case("G07", fix="as its last statement")
async def _g07(tmp: Path) -> Raised:
    return await run_error(bad.Early, tmp), ("'start'", BAD_GRAPHS)


@case("G08", fix="must be written as self.<step>")
async def _g08(tmp: Path) -> Raised:
    return await run_error(bad.Dynamic, tmp), ("'start'", "*targets", BAD_GRAPHS)


@case("G09", fix="pass the step(s) that run next")
async def _g09(tmp: Path) -> Raised:
    return await run_error(bad.Nowhere, tmp), ("'start'", BAD_GRAPHS)


@case("G10", fix="remove `other=`")
async def _g10(tmp: Path) -> Raised:
    return await run_error(bad.Keyword, tmp), ("'start'", BAD_GRAPHS)


@case("G11", fix='must be a string literal such as foreach="items"')
async def _g11(tmp: Path) -> Raised:
    return await run_error(bad.Variable, tmp), ("'start'", "`name`", BAD_GRAPHS)


@case("G12", fix="rename the step")
async def _g12(tmp: Path) -> Raised:
    return await run_error(bad.Private, tmp), ("'_hidden'", BAD_GRAPHS)


@case("G13", fix="rename the step")
async def _g13(tmp: Path) -> Raised:
    return await run_error(bad.Reserved, tmp), ("'index'", BAD_GRAPHS)


@case("G14", fix="add an @step method with that name")
async def _g14(tmp: Path) -> Raised:
    return await run_error(bad.NoStart, tmp), ("NoStart", "'start'", BAD_GRAPHS)


@case("G15", fix="define it as `def start(self)`")
async def _g15(tmp: Path) -> Raised:
    return await run_error(bad.StartJoins, tmp), ("'start'", BAD_GRAPHS)


@case("G16", fix="remove the call")
async def _g16(tmp: Path) -> Raised:
    return await run_error(bad.EndGoesOn, tmp), ("'end'", BAD_GRAPHS)


@case("G17", fix="add a join step that takes inputs")
async def _g17(tmp: Path) -> Raised:
    return await run_error(bad.EndJoins, tmp), ("'end'", BAD_GRAPHS)


@case("G18", fix="finish it with self.next(self.<step>)")
async def _g18(tmp: Path) -> Raised:
    return await run_error(bad.Stops, tmp), ("'middle'", BAD_GRAPHS)


@case("G19", fix="name one of the steps: start, train, end")
async def _g19(tmp: Path) -> Raised:
    return await run_error(bad.Typo, tmp), ("'start'", "self.trian", "'train'", BAD_GRAPHS)


@case("G20", fix="name each target once")
async def _g20(tmp: Path) -> Raised:
    return await run_error(bad.Doubled, tmp), ("'start'", "'a'", BAD_GRAPHS)


@case("G21", fix="split again inside it")
async def _g21(tmp: Path) -> Raised:
    return await run_error(bad.WideForeach, tmp), ("'start'", "items", BAD_GRAPHS)


@case("G22", fix="name the artifact (a list or other iterable) set on self")
async def _g22(tmp: Path) -> Raised:
    return await run_error(bad.BadVar, tmp), ("'start'", "'my items'", BAD_GRAPHS)


@case("G23", fix="lead back to itself or an earlier step only through a switch")
async def _g23(tmp: Path) -> Raised:
    return await run_error(bad.Loop, tmp), ("'b'", "a -> b -> a", BAD_GRAPHS)


@case("G24", fix="call self.next(self.orphan) from another step, or remove its @step")
async def _g24(tmp: Path) -> Raised:
    return await run_error(bad.Orphan, tmp), ("'orphan'", BAD_GRAPHS)


@case("G25", fix="add a join step `def join(self, inputs)` between them and end")
async def _g25(tmp: Path) -> Raised:
    return await run_error(bad.EndMeets, tmp), ("'end'", "a, b", BAD_GRAPHS)


@case("G26", fix="make it a join: `def merge(self, inputs)`")
async def _g26(tmp: Path) -> Raised:
    return await run_error(bad.NoInputs, tmp), ("'merge'", "a, b", BAD_GRAPHS)


@case("G27", fix="split in that next step")
async def _g27(tmp: Path) -> Raised:
    return await run_error(bad.JoinSplits, tmp), ("'join'", BAD_GRAPHS)


@case("G28", fix="lead every branch to one step that takes inputs")
async def _g28(tmp: Path) -> Raised:
    return await run_error(bad.Unjoined, tmp), ("'start'", "(body)", BAD_GRAPHS)


@case("G29", fix="remove the inputs parameter: `def middle(self)`")
async def _g29(tmp: Path) -> Raised:
    return await run_error(bad.Lonely, tmp), ("'middle'", BAD_GRAPHS)


@case("G30", fix="close 'a' with its own join inside its branch first")
async def _g30(tmp: Path) -> Raised:
    return await run_error(bad.Tangled, tmp), ("'join'", "a1 from a", BAD_GRAPHS)


@case("G31", fix="put at least one step in every branch")
async def _g31(tmp: Path) -> Raised:
    return await run_error(bad.Shortcut, tmp), ("'join'", "'start'", BAD_GRAPHS)


@case("G32", fix="end the last step of every branch of 'start' with self.next(self.join)")
async def _g32(tmp: Path) -> Raised:
    return await run_error(bad.Missing, tmp), ("'join'", "'start'", "b never lead here", BAD_GRAPHS)


@case("G33", fix="move the work that may fail into a step before the split")
async def _g33(tmp: Path) -> Raised:
    return await run_error(bad.CaughtSplit, tmp), ("'start'", BAD_GRAPHS)


@case("G34", fix="which is not a step")
async def _g34(tmp: Path) -> Raised:
    return await run_error(bad.Broken, tmp), ("Broken", "2 problems", "'start'", "'end'")


@case("G81", fix="remove 'x' from the class to make it an artifact")
async def _g81(tmp: Path) -> Raised:
    return await run_error(bif.ConstWriteFlow, tmp), ("'start'", "self.x", "ConstWriteFlow")


@case("G171", fix="keep start=True on one of them")
async def _g171(tmp: Path) -> Raised:
    return await run_error(sef.TwoStarts, tmp), ("TwoStarts", "'a'", "'b'", sef.__file__)


@case("G172", fix="rename this step, or move start=True onto it")
async def _g172(tmp: Path) -> Raised:
    return await run_error(sef.StartAndMarked, tmp), ("'start'", "'begin'", sef.__file__)


@case("G271", fix="write a switch as self.next(")
async def _g271(tmp: Path) -> Raised:
    return await run_error(bsw.BadKey, tmp), ("'start'", "the case `1` is not a literal string")


@case("G272", fix='e.g. condition="mode"')
async def _g272(tmp: Path) -> Raised:
    return await run_error(bsw.PrivateCondition, tmp), ("'start'", "condition='_x'")


@case("G273", fix="move the work that may fail into a step before the switch")
async def _g273(tmp: Path) -> Raised:
    return await run_error(bsw.CatchOnSwitch, tmp), ("'start'", "@catch is on a switch")


@case("G274", fix="loop back to a step that is inside the same splits as the switch")
async def _g274(tmp: Path) -> Raised:
    return await run_error(bsw.LoopOutOfForeach, tmp), ("'body'", "loops back to 'start'")


@case("G275", fix="give a switch of the loop a case that leads on, towards end")
async def _g275(tmp: Path) -> Raised:
    return await run_error(bsw.NoWayOut, tmp), ("'a'", "every way on loops back")


@case(
    "G276",
    fix="let the cases of a switch inside a branch (or a foreach) meet in a step before the join",
)
async def _g276(tmp: Path) -> Raised:
    return await run_error(bsw.SwitchIntoJoin, tmp), ("'join'", "3 steps lead here", "'start'")


# --- R: parameters given to a run -----------------------------------------------------------


@case("R01", fix="valid parameters: alpha, epochs")
async def _r01(tmp: Path) -> Raised:
    return await run_error(cf.Params, tmp, alpah=0.1), ("Params", "'alpah'", "'alpha'")


@case("R02", fix="remove them")
async def _r02(tmp: Path) -> Raised:
    return await run_error(Pair, tmp, alpha=1), ("Pair", "alpha")


@case("R03", fix="pass flow.run(runs=...) or --runs VALUE")
async def _r03(tmp: Path) -> Raised:
    return await run_error(cf.Needs, tmp), ("Needs", "'runs'")


@case("R04", fix="use true/false, 1/0, yes/no or on/off")
async def _r04(tmp: Path) -> Raised:
    return await run_error(cf.Params, tmp, verbose="maybe"), ("Params", "'verbose'", "'maybe'")


@case("R05", fix="pass a number such as 0.5")
async def _r05(tmp: Path) -> Raised:
    return await run_error(cf.Params, tmp, alpha="fast"), ("Params", "'alpha'", "'fast'")


@case("R06", fix="or declare type=float")
async def _r06(tmp: Path) -> Raised:
    return await run_error(cf.Params, tmp, epochs="2.5"), ("Params", "'epochs'", "'2.5'")


@case("R07", fix="pass a whole number such as 3")
async def _r07(tmp: Path) -> Raised:
    return await run_error(cf.Params, tmp, epochs=[1]), ("Params", "'epochs'", "list")


@case("R08", fix="""pass JSON such as '{"k": 1}'""")
async def _r08(tmp: Path) -> Raised:
    return await run_error(cf.Params, tmp, config="{k: 1}"), ("Params", "'config'")


@case("R09", fix="pass only dicts, lists, strings, numbers, booleans and None")
async def _r09(tmp: Path) -> Raised:
    return await run_error(cf.Params, tmp, config={"when": object()}), ("Params", "'config'")


@case("R10", fix="pass a value int.from_bytes accepts")
async def _r10(tmp: Path) -> Raised:
    return await run_error(cf.Params, tmp, when="soon"), ("Params", "'when'", "'soon'")


@case("R11", fix="correct default= in the flow")
async def _r11(tmp: Path) -> Raised:
    return await run_error(cf.BadDefault, tmp), ("BadDefault", "'width'", "'wide'")


@case("R12", fix="pass the file's path as a str or pathlib.Path")
async def _r12(tmp: Path) -> Raised:
    return await run_error(cf.Params, tmp, data=12), ("Params", "'data'")


@case("R13", fix="pass an existing, readable file with --data or data=...")
async def _r13(tmp: Path) -> Raised:
    missing = str(tmp / "missing.csv")
    return await run_error(cf.Params, tmp, data=missing), ("Params", "'data'", missing)


@case("R14", fix="declare its encoding=, or is_text=False to get bytes")
async def _r14(tmp: Path) -> Raised:
    binary = tmp / "data.bin"
    binary.write_bytes(b"\xff\xfe\x00 not utf-8")
    return await run_error(cf.Params, tmp, data=str(binary)), ("Params", "'data'", str(binary))


@case("R15", fix="pass a plain value (number, string, JSON-like data)")
async def _r15(tmp: Path) -> Raised:
    return await run_error(cf.Anything, tmp, thing=threading.Lock()), ("Anything", "'thing'")


@case("R81", fix="nested a few hundred levels at most")
async def _r81(tmp: Path) -> Raised:
    deep = "[" * 100_000
    return await run_error(bif.JsonFlow, tmp, cfg=deep), ("JsonFlow", "'cfg'")


@case("R82", fix="pass it as a string (type=str, or in quotes inside JSON)")
async def _r82(tmp: Path) -> Raised:
    return await run_error(bif.JsonFlow, tmp, count="9" * 5000), ("JsonFlow", "'count'")


@case("R83", fix="pass the path of a regular file with --data or data=...")
async def _r83(tmp: Path) -> Raised:
    return await run_error(bif.IncludeFlow, tmp, data="/dev/null"), ("IncludeFlow", "/dev/null")


@case("R84", fix="declare IncludeFile('data', ..., max_bytes=...) large enough for it")
async def _r84(tmp: Path) -> Raised:
    big = tmp / "big.bin"
    big.write_bytes(b"x" * 2048)
    return await run_error(bif.IncludeFlow, tmp, data=str(big)), ("IncludeFlow", str(big), "1024")


@case("R85", fix="pass the file's path")
async def _r85(tmp: Path) -> Raised:
    return await run_error(bif.IncludeFlow, tmp, data="a\0b"), ("IncludeFlow", "'data'")


async def config_error(tmp: Path, flow: type[FlowSpec] = ccf.Configured, **config: Any) -> Any:
    return await raised_async(flow(store=store_of(tmp), echo=False, config=config).run())


async def raised_async(awaitable: Awaitable[object]) -> BaseException:
    try:
        await awaitable
    except Exception as exc:
        return exc
    raise AssertionError("nothing was raised")


async def config_file_error(tmp: Path, text: str | bytes | None) -> Raised:
    path = tmp / "cfg.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    code, err = await _configured_command(tmp, "--config", "cfg", str(path), "run")
    return CommandLine(err, code), ("'cfg'", "Configured", str(path))


async def _configured_command(tmp: Path, *argv: str) -> tuple[int, str]:
    def command() -> int:
        try:
            return flow_main(ccf.Configured, [*argv, "--quiet", "--store", store_of(tmp)])
        except SystemExit as exited:
            assert isinstance(exited.code, int)
            return exited.code

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = await anyio.to_thread.run_sync(command)
    return code, err.getvalue()


async def _config_raised(tmp: Path, *argv: str) -> BaseException:
    """The ParameterError a run of Configured raises, given these command-line options
    (through the flow object, as the command line passes them)."""
    from asyncflow._cli._config_opts import with_cli_configs
    from asyncflow._cli._flow_parser import build_flow_parser as _build

    args = _build(ccf.Configured).parse_args([*argv, "run"])
    flow = ccf.Configured(store=store_of(tmp), echo=False)
    with_cli_configs(flow, args)
    return await raised_async(flow.run())


@case("R241", fix="fix the expression or give a config that has what it reads")
async def _r241(tmp: Path) -> Raised:
    exc = await run_error(ccf.NeedsRetries, tmp)
    return exc, ("config_expr('cfg.retries')", "'retries'", "'lr'")


@case("R242", fix="pass an existing JSON file with --config cfg FILE")
async def _r242(tmp: Path) -> Raised:
    path = str(tmp / "gone.json")
    return await _config_raised(tmp, "--config", "cfg", path), ("'cfg'", "Configured", path)


@case("R243", fix="pass an existing JSON file with --config cfg FILE")
async def _r243(tmp: Path) -> Raised:
    return await _config_raised(tmp, "--config", "cfg", str(tmp)), ("'cfg'", str(tmp))


@case("R244", fix="keep data out of configs (use IncludeFile)")
async def _r244(tmp: Path) -> Raised:
    path = tmp / "big.json"
    with open(path, "wb") as file:
        file.truncate((16 << 20) + 1)  # sparse: no 16 MiB written
    return await _config_raised(tmp, "--config", "cfg", str(path)), ("'cfg'", str(path))


@case("R245", fix="pass an existing JSON file with --config cfg FILE")
async def _r245(tmp: Path) -> Raised:
    path = tmp / "latin1.json"
    path.write_bytes(b'{"caf\xe9": 1}')
    return await _config_raised(tmp, "--config", "cfg", str(path)), ("'cfg'", str(path))


@case("R246", fix="fix it, or give another with --config cfg FILE")
async def _r246(tmp: Path) -> Raised:
    path = tmp / "bad.json"
    path.write_text('{"lr": }')
    return await _config_raised(tmp, "--config", "cfg", str(path)), ("'cfg'", str(path))


@case("R247", fix="fix it, or give another value")
async def _r247(tmp: Path) -> Raised:
    return await run_error(ccf.Parsed, tmp), ("'cfg'", "Parsed", "this parser refuses")


@case("R248", fix="a config is an object")
async def _r248(tmp: Path) -> Raised:
    return await config_error(tmp, cfg="[1, 2]"), ("'cfg'", "Configured", "list")


@case("R249", fix="pass only dicts, lists, strings, numbers, booleans and None")
async def _r249(tmp: Path) -> Raised:
    return await config_error(tmp, cfg={"when": object()}), ("'cfg'", "Configured")


@case("R281", fix="write the key as '1'")
async def _r281(tmp: Path) -> Raised:
    return await config_error(tmp, cfg={"lr": 0.1, 1: "one"}), ("'cfg'", "Configured", "key 1")


@case("R282", fix="write null or a string instead")
async def _r282(tmp: Path) -> Raised:
    path = tmp / "nan.json"
    path.write_text('{"lr": NaN}')
    return await _config_raised(tmp, "--config", "cfg", str(path)), ("'cfg'", str(path), "NaN")


@case("R283", fix="fix it, or give another with --config cfg FILE")
async def _r283(tmp: Path) -> Raised:
    path = tmp / "twice.json"
    path.write_text('{"lr": 0.1, "lr": 0.2}')
    return await _config_raised(tmp, "--config", "cfg", str(path)), ("'cfg'", str(path), "'lr'")


@case("R250", fix="give a function, or the dotted name of one")
async def _r250(tmp: Path) -> Raised:
    return await run_error(ccf.ParsedByName, tmp), ("'cfg'", "nothing_here")


@case("R251", fix="only for the flow's Configs")
async def _r251(tmp: Path) -> Raised:
    return await config_error(tmp, cgf={}), ("'cgf'", "Configured", "cfg, needed")


@case("R252", fix="pass --config cfg FILE, --config-value cfg JSON")
async def _r252(tmp: Path) -> Raised:
    return await run_error(ccf.Required, tmp), ("'cfg'", "Required")


@case("R253", fix="have its parser return plain data")
async def _r253(tmp: Path) -> Raised:
    import asyncflow._runtime._configs as configs

    def refuse(value: object) -> object:
        raise asyncflow._codecs.CodecError("refused on purpose")

    saved = configs.encode
    configs.encode = refuse  # type: ignore[assignment]
    try:
        return await config_error(tmp, cfg={"lr": 1}), ("'cfg'", "refused on purpose")
    finally:
        configs.encode = saved


@case("R254", fix="start a new run")
async def _r254(tmp: Path) -> Raised:
    flow = ccf.Dated(store=store_of(tmp), echo=False)
    assert isinstance(await raised_async(flow.run()), StepFailed)
    return await raised_async(flow.resume()), ("'cfg'", "Dated", "not plain data")


@case("R321", fix="give the Config a default")
async def _r321(tmp: Path) -> Raised:
    path = store_of(tmp)
    assert isinstance(
        await raised_async(ccf.FailsBeforeConfig(store=path, echo=False).run()), StepFailed
    )

    class FailsBeforeConfig(ccf.NowRequiresConfig):  # the flow file, edited; same name
        pass

    exc = await raised_async(FailsBeforeConfig(store=path, echo=False).resume())
    fixed = FailsBeforeConfig(store=path, echo=False, config={"cfg": {"a": 1}})
    assert (await fixed.resume()).successful  # what the message says to do works
    return exc, ("'cfg'", "requires Config", "resume takes no --config")


@case("R255", fix="a config is given to the flow object")
async def _r255(tmp: Path) -> Raised:
    return await run_error(ccf.Configured, tmp, cfg={"lr": 1}), ("'cfg'", "Configured")


# --- E: packages a flow asks for (@conda, @pypi) --------------------------------------------


class NeedsMissing(FlowSpec):
    @asyncflow.pypi(packages={"asyncflow-absent-package": ">=1.5"})
    @step
    def start(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


@case("E161", fix="-m pip install 'asyncflow-absent-package>=1.5'")
async def _e161(tmp: Path) -> Raised:
    exc = await run_error(NeedsMissing, tmp)
    assert not (tmp / "store.db").exists()  # nothing stored, not even the file
    return exc, ("NeedsMissing", "asyncflow-absent-package (step start)", sys.executable)


# --- S: while a step runs -------------------------------------------------------------------


async def step_failed(flow: type[FlowSpec], tmp: Path, **params: Any) -> StepFailed:
    exc = await run_error(flow, tmp, **params)
    assert isinstance(exc, StepFailed), exc
    assert exc.run.status == "failed"
    return exc


@case("S01", fix="fix the step")
async def _s01(tmp: Path) -> Raised:
    exc = await step_failed(Boom, tmp)
    return exc, ("'start'", exc.pathspec, "RuntimeError: planned failure")


@case("S02", fix="Store a serialisable value, or use a name starting with '_'")
async def _s02(tmp: Path) -> Raised:
    return await step_failed(cf.Locked, tmp), ("'lock'", "'start'", "Locked")


@case("S03", fix="Store a serialisable value")
async def _s03(tmp: Path) -> Raised:
    return await step_failed(cf.Mirror, tmp), ("'me'", "'start'", "Mirror")


@case("S04", fix="Set self.weights in an earlier step or check the spelling")
async def _s04(tmp: Path) -> Raised:
    return await step_failed(cf.Unset, tmp), ("'end'", "'weights'", "Unset", "x")


@case("S05", fix="set self.score in that branch")
async def _s05(tmp: Path) -> Raised:
    return await step_failed(cf.Uneven, tmp), ("'b'", "'join'", "'score'")


@case("S06", fix="use one of a, b, or inputs[i]")
async def _s06(tmp: Path) -> Raised:
    return await step_failed(cf.WrongBranch, tmp), ("'join'", "'c'")


@case("S07", fix="store the value under another name, such as self.train_value")
async def _s07(tmp: Path) -> Raised:
    return await step_failed(cf.Shadow, tmp), ("self.train", "Shadow", "a step of this flow")


@case("S08", fix="store a changed value under another name, such as self.alpha_used")
async def _s08(tmp: Path) -> Raised:
    return await step_failed(cf.Tweaks, tmp), ("'alpha'", "Tweaks")


@case("S09", fix="call it once, as the last statement of the step")
async def _s09(tmp: Path) -> Raised:
    return await step_failed(cf.Again, tmp), ("'start'", "Again")


@case("S10", fix="end the step with self.next(self.end)")
async def _s10(tmp: Path) -> Raised:
    return await step_failed(cf.Returns, tmp), ("'start'", "Returns", FLOWS)


@case("S11", fix="the call must match the graph")
async def _s11(tmp: Path) -> Raised:
    return await step_failed(cf.Jumps, tmp), ("'start'", "self.b", "self.a", FLOWS)


@case("S12", fix="remove it")
async def _s12(tmp: Path) -> Raised:
    return await step_failed(cf.EndAgain, tmp), ("'end'", "EndAgain", FLOWS)


@case("S13", fix="pass steps of this flow as self.<step_name>")
async def _s13(tmp: Path) -> Raised:
    return await step_failed(cf.NotAStep, tmp), ("'start'", "NotAStep")


@case("S14", fix="foreach takes the name of an artifact as a string")
async def _s14(tmp: Path) -> Raised:
    return await step_failed(cf.NumberedForeach, tmp), ("'start'", "foreach=3")


@case("S15", fix="set self.things to a list (or any iterable) before calling self.next()")
async def _s15(tmp: Path) -> Raised:
    return await step_failed(cf.Fanout, tmp), ("'start'", "'things'", "Fanout", FLOWS)


@case("S16", fix="make it a list, tuple, range or other iterable")
async def _s16(tmp: Path) -> Raised:
    return await step_failed(cf.Fanout, tmp, kind="int"), ("'start'", "self.things", "int")


@case("S17", fix="a foreach needs at least one element")
async def _s17(tmp: Path) -> Raised:
    return await step_failed(cf.Fanout, tmp, kind="empty"), ("'start'", "self.things")


@case("S18", fix="fix the step")
async def _s18(tmp: Path) -> Raised:
    return await step_failed(cf.Slow, tmp), ("'start'", "@timeout of 0.05 s")


@case("S19", fix="works only in a join step")
async def _s19(tmp: Path) -> Raised:
    return await step_failed(cf.NoJoin, tmp), ("'start'", "NoJoin")


@case("S20", fix="pass one")
async def _s20(tmp: Path) -> Raised:
    return await step_failed(cf.Merges, tmp, how="both"), ("'join'", "Merges")


@case("S21", fix="remove them from include= or set them in the branches")
async def _s21(tmp: Path) -> Raised:
    exc = await step_failed(cf.Merges, tmp, how="absent")
    assert getattr(exc.__cause__, "names", None) == ("weights",)
    return exc, ("'join'", "weights")


@case("S22", fix="set them on self before calling merge_artifacts()")
async def _s22(tmp: Path) -> Raised:
    exc = await step_failed(cf.Merges, tmp)
    assert getattr(exc.__cause__, "names", None) == ("score",)
    return exc, ("'join'", "score")


@case("S81", fix="store the value under another name, such as self.x_value")
async def _s81(tmp: Path) -> Raised:
    return await step_failed(bif.ConstFlow, tmp, mode="set"), ("self.x", "ConstFlow", "'start'")


@case("S82", fix="name it like a variable")
async def _s82(tmp: Path) -> Raised:
    return await step_failed(bif.NamesFlow, tmp, mode="empty"), ("''", "'start'", "NamesFlow")


@case("S83", fix="name it like a variable")
async def _s83(tmp: Path) -> Raised:
    return await step_failed(bif.NamesFlow, tmp, mode="dict"), ("''", "'start'", "NamesFlow")


@case("S84", fix="store its contents (f.read()) or its path (f.name) instead")
async def _s84(tmp: Path) -> Raised:
    try:
        exc = await step_failed(bif.HandleFlow, tmp, mode="file")
    finally:
        while bif.OPENED:
            bif.OPENED.pop().close()
    return exc, ("'f'", "'start'", "HandleFlow", bif.__file__)


@case("S85", fix="store the data it received, or the address to connect to, instead")
async def _s85(tmp: Path) -> Raised:
    try:
        exc = await step_failed(bif.HandleFlow, tmp, mode="socket")
    finally:
        while bif.OPENED:
            bif.OPENED.pop().close()
    return exc, ("'sock'", "'start'", "HandleFlow")


@case("S101", fix="Retry the step with @retry, or resume the run")
async def _s101(tmp: Path) -> Raised:
    exc = await step_failed(cf.DiesInWorker, tmp)
    return exc, ("DiesInWorker/", "/start/", "exited with code 1")


@case("S102", fix="make it importable")
async def _s102(tmp: Path) -> Raised:
    import types

    module = types.ModuleType("af_made_at_run_time")
    source = tmp / "source_of_a_module_made_at_run_time.py"  # readable, but not importable
    source.write_text(cf.MADE_AT_RUN_TIME)
    exec(compile(cf.MADE_AT_RUN_TIME, str(source), "exec"), module.__dict__)
    sys.modules[module.__name__] = module
    try:
        exc = await step_failed(module.Unimportable, tmp)
    finally:
        del sys.modules[module.__name__]
    return exc, ("could not load the flow", "af_made_at_run_time")


@case("S121", fix="must unpickle in the coordinating process")
async def _s121(tmp: Path) -> Raised:
    from tests.flows import executor_attack_flows as af

    exc = await step_failed(af.UnreadableItemsFlow, tmp)
    return exc, ("UnreadableItemsFlow/", "could not be read", "TypeError")


@case("S122", fix="a script must start runs under if __name__ == '__main__':")
async def _s122(tmp: Path) -> Raised:
    pytest.importorskip("distributed")
    import multiprocessing.spawn

    from tests.flows import dask_flows

    # The cluster's worker processes cannot start: here no Python where multiprocessing
    # looks for one (a script without the __main__ guard: tests/test_executor_attack.py).
    before = multiprocessing.spawn.get_executable()
    multiprocessing.spawn.set_executable(str(tmp / "no-python-here"))
    try:
        flow = dask_flows.PlainFlow(store=store_of(tmp), echo=False, executor="dask", processes=1)
        with pytest.raises(StepFailed) as info:
            await flow.run()
    finally:
        multiprocessing.spawn.set_executable(before)
    exc = info.value
    return exc, ("cannot start a Dask LocalCluster",)


async def dask_step_failed(flow: type[FlowSpec], tmp: Path, **params: Any) -> StepFailed:
    """What a run of ``flow`` on a Dask LocalCluster started for the run raises."""
    try:
        await flow(store=store_of(tmp), echo=False, processes=1).run(**params)
    except StepFailed as exc:
        return exc
    raise AssertionError(f"{flow.__name__} ran without an error")


@case("S111", fix="Read it as self.<name> in the step's source, so that it is shipped")
async def _s111(tmp: Path) -> Raised:
    pytest.importorskip("distributed")
    from tests.flows import dask_flows

    path = store_of(tmp)
    exc = await dask_step_failed(dask_flows.HiddenReadFlow, tmp, store_file=path, hide=True)
    return exc, ("artifact 'hidden'", f"HiddenReadFlow/{exc.run.id}/peek/", path)


@case("S112", fix="Retry the step with @retry, or resume the run")
async def _s112(tmp: Path) -> Raised:
    pytest.importorskip("distributed")
    from tests.flows import dask_flows

    exc = await dask_step_failed(dask_flows.DieFlow, tmp, marker=str(tmp / "died"))
    return exc, (f"DieFlow/{exc.run.id}/die/", "died")


@case("S113", fix="start it (dask scheduler) or correct the address")
async def _s113(tmp: Path) -> Raised:
    pytest.importorskip("distributed")
    import dask

    from tests.flows import dask_flows

    with socket.socket() as sock:  # a port where nothing listens
        sock.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{sock.getsockname()[1]}"
    flow = dask_flows.PlainFlow(
        store=store_of(tmp), echo=False, executor="dask", dask_address=address
    )
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        try:
            await flow.run()
        except StepFailed as exc:
            return exc, (address,)
    raise AssertionError("the run did not fail")


@case("S161", fix="must be a str")
async def _s161(tmp: Path) -> Raised:
    return raised(lambda: Markdown(3)), ("Markdown(text)", "3")  # type: ignore[arg-type]


@case("S162", fix="must be a list of rows")
async def _s162(tmp: Path) -> Raised:
    return raised(lambda: Table("a,b")), ("'a,b'",)  # type: ignore[arg-type]


@case("S163", fix="use Image.from_matplotlib(fig)")
async def _s163(tmp: Path) -> Raised:
    return raised(lambda: Image("plot.png")), ("str",)  # type: ignore[arg-type]


@case("S151", fix="Start workers that declare enough")
async def _s151(tmp: Path) -> Raised:
    distributed = pytest.importorskip("distributed")
    from tests.flows import placement_flows

    def start() -> tuple[Any, Any]:
        cluster = distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, dashboard_address=":0", resources={"CPU": 2}
        )
        return cluster, distributed.Client(cluster, set_as_default=False)

    cluster, client = await anyio.to_thread.run_sync(start)
    try:
        flow = placement_flows.TooBigFlow(
            store=store_of(tmp), echo=False, executor="dask", dask_client=client
        )
        with pytest.raises(StepFailed) as info:
            await flow.run()
    finally:
        await anyio.to_thread.run_sync(client.close)
        await anyio.to_thread.run_sync(cluster.close)
    return info.value, ("TooBigFlow/", "/start/", "CPU=4", "CPU=2")


@case("S241", fix="Call self.merge_artifacts(inputs) first")
async def _s241(tmp: Path) -> Raised:
    exc = await step_failed(ccf.ForgetsMerge, tmp)
    return exc, ("'join'", "'weights'", "inputs.a.weights, inputs.b.weights")


@case("S242", fix="copy it with .to_dict() and change the copy")
async def _s242(tmp: Path) -> Raised:
    return await step_failed(ccf.ChangesConfig, tmp), ("ChangesConfig/1/only/1",)


@case("S243", fix="such as self.cfg_used = self.cfg.to_dict()")
async def _s243(tmp: Path) -> Raised:
    return await step_failed(ccf.AssignsConfig, tmp), ("'cfg'", "AssignsConfig")


@case("S244", fix="read an optional key with .get('momentum')")
async def _s244(tmp: Path) -> Raised:
    return await step_failed(ccf.ReadsMissingKey, tmp), ("'momentum'", "'lr'")


@case("S271", fix="or add a case for it")
async def _s271(tmp: Path) -> Raised:
    exc = await step_failed(swf.SizeFlow, tmp, size="medium")
    return exc, ("'start'", "'medium'", "('big', 'small')", "str(self.choice)")


@case("S272", fix="before calling self.next()")
async def _s272(tmp: Path) -> Raised:
    return await step_failed(swf.NoConditionFlow, tmp), ("'start'", "'route'", "('a', 'b')")


@case("S331", fix="set self.choice to a value whose str() works")
async def _s331(tmp: Path) -> Raised:
    exc = await step_failed(swf.BadStrConditionFlow, tmp)
    return exc, (
        "'start'",
        "'choice'",
        "RuntimeError: boom in __str__",
        "choosing the switch's case",
    )


@case("S273", fix="raise the limit")
async def _s273(tmp: Path) -> Raised:
    try:
        await swf.EndlessFlow(store=store_of(tmp), echo=False, max_passes=2).run()
    except StepFailed as failed:
        exc = failed
    return exc, ("'spin_round'", "pass 3", "allows 2 passes", "--max-passes N")


# --- O: outside a run -----------------------------------------------------------------------


@case("O01", fix="leave it out for the default of 16")
async def _o01(tmp: Path) -> Raised:
    return raised(lambda: Pair(max_workers=0)), ("max_workers", "0")


@case("O101", fix="")
async def _o101(tmp: Path) -> Raised:
    return raised(lambda: Pair(executor="gpu")), ("'gpu'",)


@case("O102", fix="leave it out for one worker process per core")
async def _o102(tmp: Path) -> Raised:
    return raised(lambda: Pair(processes=0)), ("processes", "0")


@case("O02", fix="use asyncflow.Flow to read stored runs")
async def _o02(tmp: Path) -> Raised:
    return raised(lambda: Pair().total), ("'Pair'", "'total'")


@case("O111", fix="install it with pip install 'asyncflow[dask]'")
async def _o111(tmp: Path) -> Raised:
    store = tmp / "store.db"
    script = (
        "import sys\n"
        "sys.modules['distributed'] = None  # as if asyncflow[dask] were not installed\n"
        "import asyncio\n"
        "from asyncflow import UsageError\n"
        "from tests.flows.catalogue import Pair\n"
        "try:\n"
        f"    asyncio.run(Pair(store={str(store)!r}, executor='dask').run())\n"
        "except UsageError as exc:\n"
        "    print(exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert not store.exists()  # refused before anything was stored
    return asyncflow.UsageError(done.stdout.strip()), ("executor='dask'",)


@case("O112", fix="pass a Client")
async def _o112(tmp: Path) -> Raised:
    pytest.importorskip("distributed")
    flow = Pair(store=store_of(tmp), echo=False, executor="dask", dask_client="tcp://x:8786")
    return await run_raised(flow), ("dask_client=", "str")


@case("O113", fix="pass a synchronous Client")
async def _o113(tmp: Path) -> Raised:
    distributed = pytest.importorskip("distributed")
    async with (
        distributed.LocalCluster(
            n_workers=0, processes=False, asynchronous=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster, asynchronous=True, set_as_default=False) as client,
    ):
        flow = Pair(store=store_of(tmp), echo=False, executor="dask", dask_client=client)
        return await run_raised(flow), ("asynchronous=True",)


@case("O121", fix="leave it out to start a LocalCluster for each run")
async def _o121(tmp: Path) -> Raised:
    return raised(lambda: Pair(executor="dask", dask_address="")), ("dask_address", "''")


@case("O122", fix="Start runs under if __name__ == '__main__': in the script")
async def _o122(tmp: Path) -> Raised:
    pytest.importorskip("distributed")
    import multiprocessing

    # What a process that multiprocessing's spawn starts sees while it imports __main__
    # (the real thing: tests/test_executor_attack.py runs a script without the guard).
    me = multiprocessing.current_process()
    me._inheriting = True  # type: ignore[attr-defined]
    try:
        flow = Pair(store=store_of(tmp), echo=False, executor="dask")
        return await run_raised(flow), ("Dask", "nothing was run")
    finally:
        del me._inheriting  # type: ignore[attr-defined]


@asyncflow.project(name="movies")
class Films(FlowSpec):
    @step
    def start(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


@asyncflow.project(name="movies", branch="pinned")
class PinnedFilms(Films):
    pass


@case("O141", fix="add the decorator or leave the option out")
async def _o141(tmp: Path) -> Raised:
    return raised(lambda: Pair(store=store_of(tmp), branch="x")), ("Pair", "branch=", "--branch")


@case("O142", fix="pass e.g. --branch my_test")
async def _o142(tmp: Path) -> Raised:
    return raised(lambda: Films(store=store_of(tmp), branch="Fix-1")), ("'Fix-1'",)


@case("O143", fix="not both")
async def _o143(tmp: Path) -> Raised:
    made = raised(lambda: PinnedFilms(store=store_of(tmp), branch="x"))
    return made, ("PinnedFilms", "branch")


@case("O144", fix="production must be True or False")
async def _o144(tmp: Path) -> Raised:
    return raised(lambda: Films(store=store_of(tmp), production="yes")), ("'yes'",)  # type: ignore[arg-type]


async def run_raised(flow: FlowSpec) -> BaseException:
    try:
        await flow.run()
    except asyncflow.UsageError as exc:
        return exc
    raise AssertionError("the run was not refused")


@case("O161", fix="pass the path of a store file")
async def _o161(tmp: Path) -> Raised:
    return raised(lambda: asyncflow.metadata("service@https://mf.example.com")), ("service@",)


@case("O162", fix="pass its path")
async def _o162(tmp: Path) -> Raised:
    return raised(lambda: asyncflow.metadata("local@")), ("'local@'",)


@case("O191", fix="leave it out (None) for no bound")
async def _o191(tmp: Path) -> Raised:
    return raised(lambda: asyncflow.Runner(store=store_of(tmp), max_runs=0)), ("not 0",)


async def runner_error(runner: asyncflow.Runner, flow: Any) -> BaseException:
    try:
        await runner.start(flow)
    except asyncflow.UsageError as exc:
        return exc
    raise AssertionError("the start was not refused")


@case("O192", fix="make a new Runner(...) for each `async with` block")
async def _o192(tmp: Path) -> Raised:
    runner = asyncflow.Runner(store=store_of(tmp))
    async with runner:
        pass
    try:
        async with runner:
            pass
    except asyncflow.UsageError as exc:
        return exc, ("entered already",)
    raise AssertionError("the second block was not refused")


@case("O193", fix="start runs inside `async with Runner(...) as runner:`")
async def _o193(tmp: Path) -> Raised:
    return await runner_error(asyncflow.Runner(store=store_of(tmp)), Pair), ("not open",)


@case("O194", fix="write e.g. runner.start(TrainFlow, alpha=0.1)")
async def _o194(tmp: Path) -> Raised:
    async with asyncflow.Runner(store=store_of(tmp)) as runner:
        return await runner_error(runner, "Pair"), ("not 'Pair'",)


@case("O195", fix="make it with store=runner.store, or pass the class Pair")
async def _o195(tmp: Path) -> Raised:
    other = str(tmp / "other.db")
    async with asyncflow.Runner(store=store_of(tmp)) as runner:
        made = await runner_error(runner, Pair(store=other, echo=False))
    return made, ("Pair", other, store_of(tmp))


@case("O201", fix="call flow.stream(...) again for another run")
async def _o201(tmp: Path) -> Raised:
    stream = Pair(store=store_of(tmp), echo=False).stream()
    async with stream:
        try:
            await stream.__aenter__()
        except asyncflow.UsageError as exc:
            made: BaseException = exc
        else:
            raise AssertionError("entering the stream again was not refused")
        async for _ in stream:
            pass
    return made, ("flow.stream()",)


@case("O241", fix='such as config={"cfg": {"lr": 0.1}}')
async def _o241(tmp: Path) -> Raised:
    return raised(lambda: ccf.Configured(config=["cfg"])), ("['cfg']",)  # type: ignore[arg-type]


@case("O242", fix="`run = await Pair().run(...)`")
async def _o242(tmp: Path) -> Raised:
    return raised(lambda: Pair.main(["run"])), ("Pair.main()", "a notebook cell")


@case("O271", fix="leave it out for the default of 1000")
async def _o271(tmp: Path) -> Raised:
    return raised(lambda: Pair(max_passes=0)), ("max_passes", "0")


@case("O331", fix="give it to the constructor")
async def _o331(tmp: Path) -> Raised:
    try:
        await swf.EndlessFlow(store=store_of(tmp), echo=False).resume(max_passes=5)
    except AsyncflowError as exc:
        return exc, ("max_passes=...", "EndlessFlow(max_passes=...).resume()", "give it again")
    raise AssertionError("resume(max_passes=5) was not refused")


@case("O332", fix="reuses the origin's parameters")
async def _o332(tmp: Path) -> Raised:
    try:
        await swf.EndlessFlow(store=store_of(tmp), echo=False).resume(alpha=5)
    except AsyncflowError as exc:
        return exc, ("EndlessFlow.resume()", "'alpha'")
    raise AssertionError("resume(alpha=5) was not refused")


# --- C: reading runs ------------------------------------------------------------------------


async def pair_store(tmp: Path) -> str:
    path = store_of(tmp)
    await Pair(store=path, echo=False).run()
    return path


@case("C01", fix="Run the flow with this store first")
async def _c01(tmp: Path) -> Raised:
    path = store_of(tmp)
    open_writer(path).close()  # a store, with no run in it
    return raised(lambda: Flow("Pair", store=path)), ("'Pair'", path)


@case("C02", fix="Check the name (it is the flow's class name) or the store path")
async def _c02(tmp: Path) -> Raised:
    path = await pair_store(tmp)
    return raised(lambda: Flow("Piar", store=path)), ("'Piar'", path, "Pair")


@case("C03", fix="run ids are whole numbers")
async def _c03(tmp: Path) -> Raised:
    flow = Flow("Pair", store=await pair_store(tmp))
    return raised(lambda: flow["latest"]), ("'latest'", "Pair")


@case("C04", fix="Use one of those ids")
async def _c04(tmp: Path) -> Raised:
    path = await pair_store(tmp)
    flow = Flow("Pair", store=path)
    return raised(lambda: flow[99]), ("run 99", "Pair", path, "newest first: 1")


@case("C05", fix="check the spelling")
async def _c05(tmp: Path) -> Raised:
    run = Flow("Pair", store=await pair_store(tmp))["1"]
    return raised(lambda: run["strat"]), ("Pair/1", "'strat'", "start, end")


@case("C06", fix="Read one of those steps instead")
async def _c06(tmp: Path) -> Raised:
    failed = (await step_failed(Boom, tmp)).run
    return raised(lambda: failed["middle"]), ("'middle'", failed.pathspec, "failed", "start")


@case("C07", fix="Use one of those task ids")
async def _c07(tmp: Path) -> Raised:
    step_ = Flow("Pair", store=await pair_store(tmp))["1"]["start"]
    return raised(lambda: step_["7"]), ("Pair/1/start", "'7'", "its tasks: 1")


@case("C08", fix="Check the spelling")
async def _c08(tmp: Path) -> Raised:
    task = Flow("Pair", store=await pair_store(tmp))["1"]["start"].task
    return raised(lambda: task.data.y), (task.pathspec, "'y'", "its artifacts: x")


@case("C09", fix="Read the data of a step that ran instead")
async def _c09(tmp: Path) -> Raised:
    failed = (await step_failed(Boom, tmp)).run
    return raised(lambda: failed.data), (failed.pathspec, "failed", "start")


@case("C10", fix="read it where that class's module can be imported")
async def _c10(tmp: Path) -> Raised:
    module = f"catalogue_gone_{uuid.uuid4().hex}"
    (tmp / f"{module}.py").write_text("class Thing:\n    pass\n")
    sys.path.insert(0, str(tmp))
    try:
        value = __import__(module).Thing()
        path = store_of(tmp)
        write_run(path, "Gone", [T("start", artifacts={"thing": value}), T("end")])
        # The module still imports, but no longer defines the class (a module that cannot
        # be imported at all is U51).
        del sys.modules[module].Thing
        task = Flow("Gone", store=path)["1"]["start"].task
        return raised(lambda: task.data.thing), ("'thing'", task.pathspec, "pickle", path)
    finally:
        sys.path.remove(str(tmp))
        del sys.modules[module]


@case("C11", fix="restore it from a copy")
async def _c11(tmp: Path) -> Raised:
    path = await pair_store(tmp)
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("DELETE FROM blobs WHERE sha IN (SELECT sha FROM artifacts WHERE name='x')")
    task = Flow("Pair", store=path)["1"]["start"].task
    return raised(lambda: task.data.x), (path, "missing")


@case("C12", fix="restore it from a copy")
async def _c12(tmp: Path) -> Raised:
    path = await pair_store(tmp)
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        # Hostile or damaged: the source blob claims to be a pickle, which is never loaded.
        conn.execute(
            "UPDATE blobs SET encoding = 'pickle' WHERE sha = (SELECT source_sha FROM runs)"
        )
    run = Flow("Pair", store=path)["1"]
    return raised(lambda: run.source), ("Pair/1", path, "'pickle', not msgpack")


@case("C61", fix="restore it from a copy")
async def _c61(tmp: Path) -> Raised:
    path = await pair_store(tmp)
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "UPDATE blobs SET data = X'7f' WHERE sha IN (SELECT sha FROM artifacts WHERE name='x')"
        )
    task = Flow("Pair", store=path)["1"]["start"].task
    return raised(lambda: task.data.x), (path, "do not match its hash")


@case("C62", fix="restore it from a copy")
async def _c62(tmp: Path) -> Raised:
    from tests.test_archive_limits import _declare_pages, _first_overflow_page

    path = store_of(tmp)
    write_run(path, "Big", [T("start", artifacts={"x": bytes(3 << 20)})])
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    _declare_pages(path, _first_overflow_page(path) - 1)
    task = Flow("Big", store=path)["1"]["start"].task
    return raised(lambda: task.data.x), (path, "more than the whole file holds")


@case("C63", fix="restore it from a copy")
async def _c63(tmp: Path) -> Raised:
    path = await pair_store(tmp)
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE runs SET graph = '{\"steps\": [' || char(255)")
    run = Flow("Pair", store=path)["1"]
    return raised(lambda: run.graph), ("Pair/1", path, "graph", "not valid JSON")


@case("C71", fix="tag the runs you want to keep with 'keep'")
async def _c71(tmp: Path) -> Raised:
    path = await pair_store(tmp)
    await Pair(store=path, echo=False).run()
    asyncflow.gc(path, keep_last=1)
    return raised(lambda: Flow("Pair", store=path)[1]), ("Pair/1", path, "asyncflow gc")


@case("C41", fix="pass a whole number from 0 to 2**63 - 1")
async def _c41(tmp: Path) -> Raised:
    flow = Flow("Pair", store=await pair_store(tmp))
    return raised(lambda: flow.runs(limit=2**70)), ("limit=1180591620717411303424",)


@contextlib.contextmanager
def in_namespace(ns: str) -> Iterator[None]:
    asyncflow.namespace(ns)
    try:
        yield
    finally:
        asyncflow.default_namespace()


@case("C141", fix="Call namespace(None) to see every run")
async def _c141(tmp: Path) -> Raised:
    flow = Flow("Pair", store=await pair_store(tmp))
    with in_namespace("user:nobody"):
        return raised(lambda: flow["1"]), ("Pair/1", "'user:nobody'")


@case("C142", fix="Call namespace(None) to see every run")
async def _c142(tmp: Path) -> Raised:
    path = await pair_store(tmp)
    with in_namespace("project:movies"):
        return raised(lambda: Flow("Pair", store=path)), ("'Pair'", "'project:movies'", path)


@case("C143", fix="or None for every run")
async def _c143(tmp: Path) -> Raised:
    with in_namespace("user:nobody"):
        return raised(lambda: asyncflow.namespace(42)), ("namespace(42)",)  # type: ignore[arg-type]


@case("C144", fix="or None for every run")
async def _c144(tmp: Path) -> Raised:
    return raised(lambda: asyncflow.namespace("user:\ud800")), ("lone surrogate",)


@case("C181", fix="read those that are there with run.events()")
async def _c181(tmp: Path) -> Raised:
    from asyncflow._runtime._events import RunEvents

    path = await pair_store(tmp)
    hub = RunEvents(memory=1)  # the log keeps one event: a reader at seq 1 reads the store
    reader = hub.reader()
    run = await Pair(store=path, echo=False)._af_execute({}, events=hub)
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("DELETE FROM events WHERE run_id = ?", (int(run.id),))
    try:
        await reader.__anext__()
    except StoreError as exc:
        return exc, (f"Pair/{run.id}", path, "seq 1")
    raise AssertionError("nothing was raised")


@case("C191", fix="read a run with asyncflow.Flow(name, store=")
async def _c191(tmp: Path) -> Raised:
    path = store_of(tmp)
    async with asyncflow.Runner(store=path) as runner:
        handle = await runner.start(Pair(store=path, echo=False))
        return raised(lambda: runner.get("42")), ("'42'", f"newest first: {handle.run_id})", path)


@case("C201", fix="such as ev.seq or an SSE client's Last-Event-ID")
async def _c201(tmp: Path) -> Raised:
    path = store_of(tmp)
    async with asyncflow.Runner(store=path) as runner:
        handle = await runner.start(Pair(store=path, echo=False))
        return raised(lambda: handle.events(after=-1)), ("events(after=-1)",)


@case("C231", fix="reach it from its flow: Flow(name)[run_id]")
async def _c231(tmp: Path) -> Raised:
    path = await pair_store(tmp)
    return raised(lambda: asyncflow.Task("Pair/1/start/x", path)), (
        "Task('Pair/1/start/x')",
        "task id 'x'",
        "Flow/run_id/step/task_id",
    )


@case("C301", fix="restore it from a copy")
async def _c301(tmp: Path) -> Raised:
    path = store_of(tmp)
    run = await card_flows.FailingCardFlow(store=path, echo=False).run(fail=False)
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        # Damaged or edited: the card names a value that is not a card (an artifact's).
        conn.execute("UPDATE cards SET sha = (SELECT sha FROM run_params WHERE name = 'fail')")
    task = Flow("FailingCardFlow", store=path)[run.id]["boom"].task
    return raised(lambda: task.cards), ("card 0", task.pathspec, path, "not a list")


@case("C302", fix="pass a Task")
async def _c302(tmp: Path) -> Raised:
    from asyncflow.cards import get_cards

    return raised(lambda: get_cards(42)), ("get_cards(42)", "Flow/run/step/task")  # type: ignore[arg-type]


async def report_run(tmp: Path) -> tuple[str, str]:
    """A finished run to report, and its store."""
    path = store_of(tmp)
    run = await Pair(store=path, echo=False).run()
    return run.pathspec, path


@case("C341", fix="pass a Run")
async def _c341(tmp: Path) -> Raised:
    from asyncflow.report import write_report

    return raised(lambda: write_report(42, tmp / "r.html")), ("int 42", "Flow/run_id")  # type: ignore[arg-type]


@case("C342", fix="give the name of the HTML file to write")
async def _c342(tmp: Path) -> Raised:
    from asyncflow.report import write_report

    pathspec, path = await report_run(tmp)
    return raised(lambda: write_report(pathspec, "", store=path)), ("''",)


@case("C343", fix="choose another name")
async def _c343(tmp: Path) -> Raised:
    from asyncflow.report import write_report

    pathspec, path = await report_run(tmp)
    return raised(lambda: write_report(pathspec, path + "-wal", store=path, overwrite=True)), (
        path + "-wal",
        "side files",
    )


@case("C344", fix="choose another name")
async def _c344(tmp: Path) -> Raised:
    from asyncflow.report import write_report

    pathspec, path = await report_run(tmp)
    return raised(lambda: write_report(pathspec, tmp, store=path, overwrite=True)), (
        str(tmp),
        "not a regular file",
    )


@case("C345", fix="pass overwrite=True to replace it")
async def _c345(tmp: Path) -> Raised:
    from asyncflow.report import write_report

    pathspec, path = await report_run(tmp)
    (tmp / "r.html").write_text("mine")
    return raised(lambda: write_report(pathspec, tmp / "r.html", store=path)), (
        str(tmp / "r.html"),
    )


@case("C346", fix="write it to a folder that exists")
async def _c346(tmp: Path) -> Raised:
    from asyncflow.report import write_report

    pathspec, path = await report_run(tmp)
    target = tmp / "no-such-folder" / "r.html"
    return raised(lambda: write_report(pathspec, target, store=path)), (
        str(target),
        "No such file or directory",
    )


@case("C347", fix="not both")
async def _c347(tmp: Path) -> Raised:
    pathspec, path = await report_run(tmp)
    code, _, err = cli("report", pathspec, "-o", str(tmp / "r.html"), "--store", path,
                       "--archive", path)  # fmt: skip
    return CommandLine(err, code), ("--store PATH", "--archive FILE")


# --- T: store files -------------------------------------------------------------------------


def garbage(path: Path) -> None:
    path.write_bytes(b"this is not a database\n" * 500)


def other_program(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE contacts (name TEXT, phone TEXT)")
        conn.execute("INSERT INTO contacts VALUES ('Ada', '123')")


async def newer(path: Path) -> None:
    """A store as a newer asyncflow leaves it (a file this process never opened)."""
    source = path.with_name("source.db")
    await Pair(store=str(source), echo=False).run()
    shutil.copyfile(source, path)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA user_version = 999")


async def chunky_store(path: Path) -> None:
    """A store of a few MiB, copied alone (a complete file, with no WAL beside it)."""
    source = path.with_name("source.db")
    await Chunky(store=str(source), echo=False).run()
    shutil.copyfile(source, path)


async def truncated(path: Path, fraction: float = 0.5) -> None:
    await chunky_store(path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def zero_root_page(path: Path, table: str) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,))
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    with open(path, "r+b") as fh:
        fh.seek((root[0] - 1) * page_size)
        fh.write(b"\x00" * page_size)


def client_error(path: str, flow: str = "Pair") -> BaseException:
    return raised(lambda: Flow(flow, store=path).latest_run)


@case("T01", fix="run a flow with store=")
async def _t01(tmp: Path) -> Raised:
    path = str(tmp / "nowhere.db")
    return client_error(path), (path,)


@case("T02", fix="run a flow with this store to fill it")
async def _t02(tmp: Path) -> Raised:
    path = tmp / "empty.db"
    path.touch()
    return client_error(str(path)), (str(path), "no runs")


@case("T03", fix="point store= at an asyncflow store")
async def _t03(tmp: Path) -> Raised:
    path = tmp / "garbage.db"
    garbage(path)
    return await run_error(Pair, tmp, store_path=path), (str(path),)


@case("T04", fix="choose another path for store=")
async def _t04(tmp: Path) -> Raised:
    path = tmp / "contacts.db"
    other_program(path)
    return await run_error(Pair, tmp, store_path=path), (str(path),)


@case("T05", fix="upgrade asyncflow to read it")
async def _t05(tmp: Path) -> Raised:
    path = tmp / "newer.db"
    await newer(path)
    return client_error(str(path)), (str(path), "schema 999")


@case("T06", fix="restore the file from a copy")
async def _t06(tmp: Path) -> Raised:
    path = tmp / "cut.db"
    await truncated(path)
    return client_error(str(path), "Chunky"), (str(path), "truncated")


@case("T07", fix="restore the file from a copy")
async def _t07(tmp: Path) -> Raised:
    path = tmp / "damaged.db"
    await chunky_store(path)
    zero_root_page(path, "blob_chunks")
    task = Flow("Chunky", store=str(path))["1"]["start"].task  # opens and lists fine
    return raised(lambda: task.data.blob), (str(path), "damaged")


@case("T08", fix="pass the path of a file")
async def _t08(tmp: Path) -> Raised:
    return await run_error(Pair, tmp, store_path=tmp), (str(tmp), "is a folder")


@case("T09", fix="create it or choose another store path")
async def _t09(tmp: Path) -> Raised:
    path = tmp / "missing" / "store.db"
    return await run_error(Pair, tmp, store_path=path), (str(tmp / "missing"),)


@case("T10", fix="make it (and its -wal and -shm files, if any) writable")
async def _t10(tmp: Path) -> Raised:
    seen = await locked_away(tmp, "file")
    return as_error(seen["run"]), (seen["path"], "read-only")


@case("T11", fix="make the folder writable")
async def _t11(tmp: Path) -> Raised:
    seen = await locked_away(tmp, "folder")
    return as_error(seen["run"]), (seen["path"], seen["folder"], "read-only")


@case("T12", fix="make the folder writable")
async def _t12(tmp: Path) -> Raised:
    seen = await locked_away(tmp, "new")
    return as_error(seen["run"]), (seen["path"], seen["folder"])


@case("T13", fix="free some space, then run the flow again")
async def _t13(tmp: Path) -> Raised:
    path = store_of(tmp)
    with tight_store(extra_pages=4):
        await Pair(store=path, echo=False).run()
        exc = await run_error(Grows, tmp)
    return exc, ("Grows/2", path, "is recorded as failed")


@case("T14", fix="could not be saved, nor marked as failed")
async def _t14(tmp: Path) -> Raised:
    # A trigger of the writer's own connection (TEMP: a store holding one is refused).
    real = writer_module.open_writer

    def no_end(path: str) -> sqlite3.Connection:
        conn = real(path)
        conn.execute(
            "CREATE TEMP TRIGGER no_end BEFORE UPDATE OF status ON main.runs "
            "WHEN NEW.status <> 'running' AND NEW.id = 2 "
            "BEGIN SELECT RAISE(ABORT, 'no end for you'); END"
        )
        return conn

    writer_module.open_writer = no_end  # type: ignore[assignment]
    try:
        path = await pair_store(tmp)
        exc = await run_error(Pair, tmp)
    finally:
        writer_module.open_writer = real
    with Flow("Pair", store=path) as flow:
        assert flow["2"].status == "running"
    return exc, ("Pair/2", path, "no end for you")


@case("T15", fix="retry later or check for a stuck process")
async def _t15(tmp: Path) -> Raised:
    path = await pair_store(tmp)
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as holder:
        holder.execute("BEGIN IMMEDIATE")  # another process's write lock, held on
        with contextlib.closing(sqlite3.connect(path, timeout=0.01)) as conn:
            begin = lambda: conn.execute("BEGIN IMMEDIATE")  # noqa: E731
            exc = raised(lambda: retry_busy(begin, path, attempts=3))
        holder.execute("ROLLBACK")
    return exc, (path,)


@case("T51", fix="If you added them yourself, drop them; otherwise restore the file from a copy")
async def _t51(tmp: Path) -> Raised:
    path = await pair_store(tmp)
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TRIGGER planted AFTER INSERT ON blobs BEGIN DELETE FROM runs; END")
    return await run_error(Pair, tmp), (path, "unknown trigger 'planted'")


@case("T61", fix="restore the file from a copy")
async def _t61(tmp: Path) -> Raised:
    path = await pair_store(tmp)
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("PRAGMA writable_schema = ON")
        garbled = "CREATE TABLE run_tags (run_id, tag) \xff".encode("latin-1")
        conn.execute(
            "UPDATE sqlite_master SET sql = CAST(? AS TEXT) WHERE name = 'run_tags'", (garbled,)
        )
    return raised(lambda: Flow("Pair", store=path)), (path, "not text")


@case("T62", fix="restore it from a copy")
async def _t62(tmp: Path) -> Raised:
    path = await pair_store(tmp)
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE runs SET source_sha = 'text, not a sha'")
    return raised(lambda: Flow("Pair", store=path)["1"]), (path, "never writes", "TypeError")


@case("T71", fix="restore the file from a copy")
async def _t71(tmp: Path) -> Raised:
    path = await pair_store(tmp)
    from asyncflow._store._store import Store

    Store.close_all()  # the store is one file again, as after the process's exit
    with contextlib.closing(sqlite3.connect(path)) as conn:
        [(root,)] = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'run_tags_by_tag'"
        )
    with open(path, "r+b") as fh:  # a damaged page that no new run would touch
        fh.seek((root - 1) * 65536)
        fh.write(b"\x00" * 8)
    return await run_error(Pair, tmp, store_path=Path(path)), (path, "quick_check")


@case("T41", fix="pass the path of a store or archive file")
async def _t41(tmp: Path) -> Raised:
    run = Flow("Pair", store=await pair_store(tmp))["1"]
    path = str(tmp / "a\0b.afa")
    return raised(lambda: run.export(path)), (repr(path),)


@case("T42", fix="or a path that does not exist yet for a new one")
async def _t42(tmp: Path) -> Raised:
    path = str(tmp / "pipe.db")
    os.mkfifo(path)  # opening it to read would wait for a writer forever
    return raised(lambda: Flow("Pair", store=path)), (path, "named pipe (FIFO)")


@case("T43", fix="pass the store file's path as a str or a pathlib.Path")
async def _t43(tmp: Path) -> Raised:
    return raised(lambda: Flow("Pair", store=3)), ("store=3",)  # type: ignore[arg-type]


@case("T91", fix="export the runs you need (`asyncflow export`) and import them into a new store")
async def _t91(tmp: Path) -> Raised:
    path = await pair_store(tmp)
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE sqlite_sequence SET seq = 9223372036854775807 WHERE name = 'runs'")
    return await run_error(Pair, tmp), (path, "9223372036854775807", "used up")


# --- L: the command line --------------------------------------------------------------------


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = asyncflow_cli(list(argv))
    return code, out.getvalue(), err.getvalue()


@case("L01", fix="expected Flow[/run[/step[/task]]]")
async def _l01(tmp: Path) -> Raised:
    code, _, err = cli("show", "Pair//1", "--store", await pair_store(tmp))
    return CommandLine(err, code), ("'Pair//1'",)


@case("L81", fix="unrecognized arguments: --epoch 3")
async def _l81(tmp: Path) -> Raised:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exited:
        flow_main(bif.JsonFlow, ["run", "--epoch", "3", "--store", store_of(tmp)])
    assert isinstance(exited.value.code, int)
    return CommandLine(err.getvalue(), exited.value.code), ("--epoch",)


@case("L133", fix="choose it with --store PATH")
async def _l133(tmp: Path) -> Raised:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exited:
        flow_main(bif.JsonFlow, ["--datastore", "s3", "run"])
    assert exited.value.code == 2
    return CommandLine(err.getvalue(), 2), ("--datastore", "one store file")


@case("L161", fix="`await XFlow().run()` inside your own service")
async def _l161(tmp: Path) -> Raised:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = flow_main(bif.JsonFlow, ["argo-workflows", "create"])
    return CommandLine(err.getvalue(), code), ("`argo-workflows`", "Argo Workflows")


async def _flow_command(tmp: Path, *argv: str) -> CommandLine:
    # In a thread: a command that gets as far as a run starts an event loop of its own.
    def command() -> int:
        try:
            return flow_main(Pair, [*argv, "--quiet", "--store", store_of(tmp)])
        except SystemExit as exited:  # a usage error, from the parser
            assert isinstance(exited.code, int)
            return exited.code

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = await anyio.to_thread.run_sync(command)
    return CommandLine(err.getvalue(), code)


@case("L151", fix="as NAME or NAME:key=value,key=value")
async def _l151(tmp: Path) -> Raised:
    return await _flow_command(tmp, "run", "--with", "sandbox:cpu=2"), ("'sandbox'",)


@case("L152", fix="write --with retry:key=value,key=value")
async def _l152(tmp: Path) -> Raised:
    return await _flow_command(tmp, "run", "--with", "retry:3"), ("'3'", "'retry:3'")


@case("L153", fix="write --with retry:key=value,key=value with those names")
async def _l153(tmp: Path) -> Raised:
    return await _flow_command(tmp, "run", "--with", "retry:tries=2"), ("tries", "times")


@case("L154", fix="leave it out for the default")
async def _l154(tmp: Path) -> Raised:
    return await _flow_command(tmp, "--with", "resources:cpu=-1", "run"), ("cpu=-1", "'start'")


@case("L201", fix="use one of rich, plain, lines, off")
async def _l201(tmp: Path) -> Raised:
    def command() -> int:
        os.environ["ASYNCFLOW_PROGRESS"] = "fancy"
        try:
            return flow_main(Pair, ["run", "--store", store_of(tmp)])
        finally:
            del os.environ["ASYNCFLOW_PROGRESS"]

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = await anyio.to_thread.run_sync(command)
    assert code == 2
    return CommandLine(err.getvalue(), code), ("ASYNCFLOW_PROGRESS='fancy'",)


@case("L231", fix="(nothing was stored)")
async def _l231(tmp: Path) -> Raised:
    from tests.flows.spin_flows import FailFlow

    path = await spin_store(tmp)

    def command() -> int:
        return flow_main(FailFlow, ["spin", "boom", "--run-id", "2", "--quiet", "--store", path])

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = await anyio.to_thread.run_sync(command)
    first, _, rest = err.getvalue().partition("\n")
    assert rest.startswith("Traceback (most recent call last):"), rest
    return CommandLine(first, code), ("'boom'", "FailFlow/2/boom/2", "ValueError: boom with x=5")


@case("L232", fix="pass --force to replace it")
async def _l232(tmp: Path) -> Raised:
    path = await pair_store(tmp)
    target = tmp / "taken.txt"
    target.write_text("mine")
    task = Flow("Pair", store=path)["1"].end_task.pathspec
    name = next(iter(Flow("Pair", store=path)["1"].end_task)).name
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = asyncflow_cli(["dump", f"{task}/{name}", "-o", str(target), "--store", path])
    assert target.read_text() == "mine"
    return CommandLine(err.getvalue(), code), (str(target),)


@case("L234", fix="even with --force: choose another name")
async def _l234(tmp: Path) -> Raised:
    path = await pair_store(tmp)
    task = Flow("Pair", store=path)["1"].end_task.pathspec
    name = next(iter(Flow("Pair", store=path)["1"].end_task)).name
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = asyncflow_cli(["dump", f"{task}/{name}", "-o", path, "--force", "--store", path])
    assert code == 2
    return CommandLine(err.getvalue(), code), (path, "is the store dump reads from")


@case("L235", fix="never replaces anything else, even with --force")
async def _l235(tmp: Path) -> Raised:
    path = await pair_store(tmp)
    task = Flow("Pair", store=path)["1"].end_task.pathspec
    name = next(iter(Flow("Pair", store=path)["1"].end_task)).name
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = asyncflow_cli(["dump", f"{task}/{name}", "-o", str(tmp), "--force", "--store", path])
    assert code == 2 and tmp.is_dir()
    return CommandLine(err.getvalue(), code), (str(tmp), "not a regular file")


@case("L321", fix="pass a new file name (or an earlier run-id file) instead. Nothing ran.")
async def _l321(tmp: Path) -> Raised:
    path = await pair_store(tmp)
    before = Path(path).read_bytes()
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = flow_main(Pair, ["run", "--run-id-file", path + "-journal", "--store", path])
    assert code == 2 and Path(path).read_bytes() == before and not os.path.exists(path + "-journal")
    return CommandLine(err.getvalue(), code), (path, "is the store of the run")


@case("L322", fix="print it instead (without -o)")
async def _l322(tmp: Path) -> Raised:
    path = store_of(tmp)
    await dump_flows.DumpOnceFlow(store=path, echo=False).run()
    out = str(tmp / "once.pkl")
    err = io.StringIO()
    dump_flows.PicklesOnce.REFUSE = True
    try:
        with contextlib.redirect_stderr(err):
            code = asyncflow_cli(
                ["dump", "DumpOnceFlow/1/start/1", "once", "-o", out, "--store", path]
            )
    finally:
        dump_flows.PicklesOnce.REFUSE = False
    assert code == 2
    assert not [n for n in os.listdir(tmp) if n.startswith(".dump-") or n == "once.pkl"]
    return CommandLine(err.getvalue(), code), ("PicklesOnce", out, "does not pickle")


@case("L323", fix="create the folder, or pass a path in one you can write to")
async def _l323(tmp: Path) -> Raised:
    path = await pair_store(tmp)
    task = Flow("Pair", store=path)["1"].end_task.pathspec
    target = str(tmp / "nodir" / "x")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = asyncflow_cli(["dump", task, "x", "-o", target, "--store", path])
    assert code == 2 and not os.path.exists(tmp / "nodir")
    return CommandLine(err.getvalue(), code), (repr(target), str(tmp / "nodir"), "No such file")


@case("L283", fix="give -o the name of the file")
async def _l283(tmp: Path) -> Raised:
    path = await pair_store(tmp)
    task = Flow("Pair", store=path)["1"].end_task.pathspec
    name = next(iter(Flow("Pair", store=path)["1"].end_task)).name
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = asyncflow_cli(["dump", f"{task}/{name}", "-o", "", "--store", path])
    assert code == 2 and out.getvalue() == ""
    return CommandLine(err.getvalue(), code), ("-o ''",)


@case("L233", fix="name it, as 1/end")
async def _l233(tmp: Path) -> Raised:
    path = await pair_store(tmp)
    task = Flow("Pair", store=path)["1"].end_task.id
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = flow_main(Pair, ["dump", f"1/end/{task}", "-o", str(tmp / "x"), "--store", path])
    assert not (tmp / "x").exists()
    return CommandLine(err.getvalue(), code), (f"1/end/{task}",)


@case("L251", fix="pip install 'asyncflow[rich]'")
async def _l251(tmp: Path) -> Raised:
    hidden = ("rich", "rich.console", "rich.live")

    def command() -> int:
        os.environ["ASYNCFLOW_PROGRESS"] = "rich"
        saved = {name: sys.modules.get(name) for name in hidden}
        sys.modules.update(dict.fromkeys(hidden))  # None: `import rich` raises ImportError
        try:
            return flow_main(Pair, ["run", "--store", store_of(tmp)])
        finally:
            del os.environ["ASYNCFLOW_PROGRESS"]
            for name, module in saved.items():
                if module is None:
                    del sys.modules[name]
                else:
                    sys.modules[name] = module

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = await anyio.to_thread.run_sync(command)
    assert code == 2
    assert not os.path.exists(store_of(tmp))  # nothing ran
    return CommandLine(err.getvalue(), code), ("ASYNCFLOW_PROGRESS=rich", "plain")


@case("L261", fix="Resume it with `python")
async def _l261(tmp: Path) -> Raised:
    from tests.test_event_readers import crash_slow_flow

    store = store_of(tmp)
    await anyio.to_thread.run_sync(crash_slow_flow, store)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = await anyio.to_thread.run_sync(
            asyncflow_cli, ["events", "SlowFlow/1", "--follow", "--store", store]
        )
    assert code == 1
    return CommandLine(err.getvalue(), code), ("SlowFlow/1", "crashed", "--origin-run-id 1")


@case("L241", fix="start a new run (`run`) to change them")
async def _l241(tmp: Path) -> Raised:
    code, err = await _configured_command(tmp, "resume", "--config-value", "cfg", "{}")
    return CommandLine(err, code), ("--config-value cfg",)


@case("L271", fix="--max-passes must be at least 1")
async def _l271(tmp: Path) -> Raised:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = flow_main(Pair, ["run", "--max-passes", "0", "--store", store_of(tmp)])
    return CommandLine(err.getvalue(), code), ("not 0",)


@case("C361", fix="install them with pip install 'asyncflow[ui]'")
async def _c361(tmp: Path) -> Raised:
    path = await pair_store(tmp)
    script = (
        "import sys\n"
        "sys.modules['uvicorn'] = None  # as if asyncflow[ui] were not installed\n"
        "from asyncflow import UsageError\n"
        "from asyncflow._report._serve import serve\n"
        "try:\n"
        f"    serve({path!r}, port=0)\n"
        "except UsageError as exc:\n"
        "    print(exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return asyncflow.UsageError(done.stdout.strip()), ("uvicorn cannot be imported",)


@case("C362", fix="--port 0 picks a free one")
async def _c362(tmp: Path) -> Raised:
    from asyncflow._report._serve import serve

    path = await pair_store(tmp)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        return raised(lambda: serve(path, port=port)), (f"127.0.0.1:{port}", "in use")


@case("C363", fix="from 0 (a free port) to 65535")
async def _c363(tmp: Path) -> Raised:
    code, _, err = cli("serve", "--port", "65536", "--store", await pair_store(tmp))
    return CommandLine(err, code), ("'65536'", "--port")


@case("C364", fix="leave --host out to serve 127.0.0.1")
async def _c364(tmp: Path) -> Raised:
    code, _, err = cli("serve", "--host", " ", "--store", await pair_store(tmp))
    return CommandLine(err, code), ("--host",)


@case("C365", fix="give --store PATH (a store) or --archive FILE (a run archive)")
async def _c365(tmp: Path) -> Raised:
    path = await pair_store(tmp)
    code, _, err = cli("serve", "--store", path, "--archive", path)
    return CommandLine(err, code), ("not both",)


@case("L281", fix="give each config once")
async def _l281(tmp: Path) -> Raised:
    code, err = await _configured_command(
        tmp, "--config-value", "cfg", "{}", "run", "--config", "cfg", str(tmp / "c.json")
    )
    assert not os.path.exists(store_of(tmp))  # nothing ran
    return CommandLine(err, code), ("'cfg'", "--config-value cfg", "--config cfg")


@case("L282", fix="leave it out")
async def _l282(tmp: Path) -> Raised:
    def command() -> int:
        argv = ["--config-value", "cfg", "{}", "spin", "start", "--run-id", "1"]
        return flow_main(ccf.Configured, [*argv, "--store", store_of(tmp)])

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = await anyio.to_thread.run_sync(command)
    return CommandLine(err.getvalue(), code), ("spin", "--config-value cfg")


# --- M: resuming a run ---------------------------------------------------------------------


@case("M01", fix="pass one of the flow's runs")
async def _m01(tmp: Path) -> Raised:
    path = await pair_store(tmp)
    with pytest.raises(asyncflow.NotFoundError) as info:
        await Pair(store=path, echo=False).resume("latest")
    return info.value, ("'latest'", "Pair")


@case("M02", fix="Pass one of them, or no step")
async def _m02(tmp: Path) -> Raised:
    path = await pair_store(tmp)
    with pytest.raises(asyncflow.NotFoundError) as info:
        await Pair(store=path, echo=False).resume(step="train")
    return info.value, ("'train'", "start, end")


@case("M03", fix="run it first")
async def _m03(tmp: Path) -> Raised:
    path = store_of(tmp)
    open_writer(path).close()  # a store, with no run in it
    with pytest.raises(asyncflow.NotFoundError) as info:
        await Pair(store=path, echo=False).resume()
    return info.value, ("Pair", path)


@case("M06", fix="pass store= pointing at the store that holds its runs")
async def _m06(tmp: Path) -> Raised:
    path = store_of(tmp)
    with pytest.raises(asyncflow.NotFoundError) as info:
        await Pair(store=path, echo=False).resume()
    assert not os.path.exists(path), "a resume created a store"
    return info.value, ("Pair", path)


@case("M04", fix="Pass one of them")
async def _m04(tmp: Path) -> Raised:
    path = await pair_store(tmp)
    with pytest.raises(asyncflow.NotFoundError) as info:
        await Pair(store=path, echo=False).resume(7)
    return info.value, ("run 7", path, "newest first: 1")


@case("M05", fix="Wait for it to end")
async def _m05(tmp: Path) -> Raised:
    store = store_of(tmp)
    entered, release = anyio.Event(), anyio.Event()
    gated = gated_flow(entered, release)
    exc: BaseException | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(gated(store=store, echo=False).run)
        await entered.wait()
        try:
            await gated(store=store, echo=False).resume("1")
        except AsyncflowError as error:
            exc = error
        finally:
            release.set()
    assert exc is not None, "resuming a live run was not refused"
    return exc, ("Gated/1", f"process {os.getpid()}")


# --- M: spinning a task ---------------------------------------------------------------------


async def spin_store(tmp: Path) -> str:
    from tests.flows.spin_flows import FailFlow, SpinFlow

    path = store_of(tmp)
    await SpinFlow(store=path, echo=False).run()
    with contextlib.suppress(StepFailed):
        await FailFlow(store=path, echo=False).run()
    return path


async def spin_error(
    flow: type[FlowSpec], path: str, step_name: str, **kwargs: Any
) -> BaseException:
    try:
        await flow(store=path, echo=False).spin(step_name, **kwargs)
    except Exception as exc:
        return exc
    raise AssertionError("nothing was raised")


@case("M231", fix="Pass one of them")
async def _m231(tmp: Path) -> Raised:
    from tests.flows.spin_flows import SpinFlow

    exc = await spin_error(SpinFlow, await spin_store(tmp), "nope", run_id=1)
    return exc, ("'nope'", "SpinFlow", "start, train, join, end")


@case("M232", fix="Spin one of those, or resume the run to reach 'end'")
async def _m232(tmp: Path) -> Raised:
    from tests.flows.spin_flows import FailFlow

    path = await spin_store(tmp)
    return await spin_error(FailFlow, path, "end", run_id=2), ("FailFlow/2", path, "start, boom")


@case("M233", fix="say which one to spin with --task ID (task=ID)")
async def _m233(tmp: Path) -> Raised:
    from tests.flows.spin_flows import SpinFlow

    exc = await spin_error(SpinFlow, await spin_store(tmp), "train", run_id=1)
    return exc, ("'train'", "SpinFlow/1", "3 tasks", "2, 3, 4")


@case("M234", fix="task ids are whole numbers")
async def _m234(tmp: Path) -> Raised:
    from tests.flows.spin_flows import SpinFlow

    exc = await spin_error(SpinFlow, await spin_store(tmp), "train", run_id=1, task="two")
    return exc, ("'two'", "'train'", "2, 3, 4")


@case("M235", fix="Pass one of those")
async def _m235(tmp: Path) -> Raised:
    from tests.flows.spin_flows import SpinFlow

    exc = await spin_error(SpinFlow, await spin_store(tmp), "train", run_id=1, task=9)
    return exc, ("'train'", "SpinFlow/1", "no task 9", "2, 3, 4")


@case("M236", fix="Resume the run instead")
async def _m236(tmp: Path) -> Raised:
    from tests.flows import spin_shape
    from tests.flows.spin_flows import ShapeFlow

    path = store_of(tmp)
    await ShapeFlow(store=path, echo=False).run()  # start -> end; the class now has a mid
    exc = await spin_error(spin_shape.ShapeFlow, path, "end", run_id=1)
    return exc, ("ShapeFlow/1/end/2", "'mid'")


@case("M237", fix="and pass one of them")
async def _m237(tmp: Path) -> Raised:
    from tests.flows.spin_flows import SpinFlow

    path = await spin_store(tmp)
    return await spin_error(SpinFlow, path, "end", run_id=7), ("SpinFlow", "run 7", path)


@case("M238", fix="pass the run whose task to spin")
async def _m238(tmp: Path) -> Raised:
    from tests.flows.spin_flows import SpinFlow

    path = await spin_store(tmp)
    return await spin_error(SpinFlow, path, "end", run_id="last"), ("'last'", "SpinFlow")


@case("M239", fix="fix the step and spin it again")
async def _m239(tmp: Path) -> Raised:
    from tests.flows.spin_flows import FailFlow

    exc = await spin_error(FailFlow, await spin_store(tmp), "boom", run_id=2)
    assert isinstance(exc, StepFailed) and isinstance(exc.__cause__, ValueError)
    return exc, ("'boom'", "FailFlow/2/boom/2", "ValueError: boom with x=5")


@case("M323", fix="start a new run to give it one")
async def _m323(tmp: Path) -> Raised:
    path = store_of(tmp)
    await dump_flows.DumpOnceFlow(store=path, echo=False).run()

    class DumpOnceFlow(dump_flows.DumpOnceFlow):  # the flow file, edited after the run
        beta = Parameter("beta", default=3)

        @step
        def start(self) -> None:
            self.seen = self.beta
            self.next(self.end)

    exc = await spin_error(DumpOnceFlow, path, "start", run_id=1)
    assert isinstance(exc, StepFailed) and exc.__cause__ is not None
    return exc.__cause__, ("'beta'", "DumpOnceFlow", "own: none")


@case("M324", fix="pass the path of an archive written by `asyncflow export`")
async def _m324(tmp: Path) -> Raised:
    from tests.flows.spin_flows import SpinFlow

    missing = str(tmp / "typo.afa")
    exc = await spin_error(SpinFlow, await spin_store(tmp), "start", run_id=1, archive=missing)
    assert not os.path.exists(missing)
    return exc, (missing, "run archive")


@case("M325", fix="Open it once to upgrade it")
async def _m325(tmp: Path) -> Raised:
    from asyncflow._store import _schema
    from tests.flows.spin_flows import SpinFlow

    path = store_of(tmp)  # an empty store of schema 2, which more than tables separate
    conn = sqlite3.connect(path)
    for _kind, name, _, sql in sorted(_schema._expected(2)[0], key=lambda o: o[0] != "table"):
        if sql and not name.startswith("sqlite_"):
            conn.execute(sql)
    conn.execute(f"PRAGMA application_id = {_schema.APPLICATION_ID}")
    conn.execute("INSERT INTO store_info VALUES ('created_at', '1')")
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    before = Path(path).read_bytes()
    exc = await spin_error(SpinFlow, path, "start", run_id=1)
    assert Path(path).read_bytes() == before
    return exc, ("schema 2", path, "asyncflow stats --store")


@case("M281", fix="spin the task again with --trust (flow.spin(..., trust=True))")
async def _m281(tmp: Path) -> Raised:
    path = store_of(tmp)
    await step_failed(tf.Resigned, tmp, db=path)  # end was refused start's unsigned pickle
    exc = await spin_error(tf.Resigned, path, "end", run_id=1)
    assert isinstance(exc, StepFailed) and exc.__cause__ is not None
    return exc.__cause__, ("'end'", "Resigned/1", "'point'")


@case("M282", fix="spin the task again with --trust")
async def _m282(tmp: Path) -> Raised:
    from asyncflow._store._store import Store
    from tests.flows.round2_flows import Victim
    from tests.test_attacker_round2 import plant_amplifier

    path = store_of(tmp)
    await Victim(store=path, echo=False).run()
    Store.close_all()
    plant_amplifier(path, 4_000_000)
    exc = await spin_error(Victim, path, "end", run_id=1)
    assert isinstance(exc, StepFailed) and exc.__cause__ is not None
    return exc.__cause__, ("'x'", "Victim/1")


# --- A: sharing runs (export, import, archives) -------------------------------------------


async def pair_archive(tmp: Path) -> tuple[str, str]:
    """A store holding Pair/1, and an archive of that run."""
    store = await pair_store(tmp)
    path = str(tmp / "pair.afa")
    Flow("Pair", store=store)["1"].export(path)
    return store, path


def edit_archive(path: str, *statements: str, redigest: bool = False) -> None:
    """Change an archive behind asyncflow's back; with ``redigest``, also put the digest of
    the changed records into its manifest, as someone covering their tracks would."""
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        for statement in statements:
            conn.execute(statement)
        if redigest:
            (text,) = conn.execute("SELECT value FROM store_info WHERE key = 'archive'").fetchone()
            manifest = json.loads(text)
            manifest["digest"] = content_digest(conn)
            conn.execute(
                "UPDATE store_info SET value = ? WHERE key = 'archive'", (json.dumps(manifest),)
            )


X_BLOB = "(SELECT sha FROM artifacts WHERE name = 'x')"


@case("A01", fix="choose another name, or overwrite it (overwrite=True")
async def _a01(tmp: Path) -> Raised:
    store, path = await pair_archive(tmp)
    run = Flow("Pair", store=store)["1"]
    return raised(lambda: run.export(path)), (path, "exists")


@case("A02", fix="give a file name")
async def _a02(tmp: Path) -> Raised:
    run = Flow("Pair", store=await pair_store(tmp))["1"]
    return raised(lambda: run.export(tmp)), (str(tmp), "folder")


@case("A03", fix="create it first")
async def _a03(tmp: Path) -> Raised:
    run = Flow("Pair", store=await pair_store(tmp))["1"]
    path = tmp / "missing" / "pair.afa"
    return raised(lambda: run.export(path)), (str(path), str(tmp / "missing"))


@case("A04", fix="pass at least one run")
async def _a04(tmp: Path) -> Raised:
    return raised(lambda: asyncflow.export_runs(tmp / "none.afa", [])), ()


@case("A05", fix="export each store's runs into an archive of its own")
async def _a05(tmp: Path) -> Raised:
    (tmp / "a").mkdir()
    (tmp / "b").mkdir()
    one, two = await pair_store(tmp / "a"), await pair_store(tmp / "b")
    runs = [Flow("Pair", store=one)["1"], Flow("Pair", store=two)["1"]]
    return raised(lambda: asyncflow.export_runs(tmp / "both.afa", runs)), (one, two)


@case("A06", fix="list its runs with `asyncflow runs`")
async def _a06(tmp: Path) -> Raised:
    store = await pair_store(tmp)
    run = Flow("Pair", store=store)["1"]
    with contextlib.closing(sqlite3.connect(store)) as conn, conn:
        conn.execute("DELETE FROM runs")  # gone since the Run was read (deleted elsewhere)
    return raised(lambda: run.export(tmp / "pair.afa")), ("Pair/1", store)


@case("A07", fix="export it once it has finished (or cancel it first)")
async def _a07(tmp: Path) -> Raised:
    store = store_of(tmp)
    entered, release = anyio.Event(), anyio.Event()
    flow = gated_flow(entered, release)(store=store, echo=False)
    exc: BaseException | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(flow.run)
        await entered.wait()
        live = await (await Flow.aopen("Gated", store=store)).aget("1")
        try:
            await live.aexport(tmp / "live.afa")
        except StoreError as error:
            exc = error
        release.set()
    assert exc is not None, "a running run was exported"
    return exc, ("Gated/1", "still running")


@case("A08", fix="the store is damaged (restore it from a copy)")
async def _a08(tmp: Path) -> Raised:
    store = await pair_store(tmp)
    with contextlib.closing(sqlite3.connect(store)) as conn, conn:
        conn.execute(f"DELETE FROM blobs WHERE sha IN {X_BLOB}")
    run = Flow("Pair", store=store)["1"]
    return raised(lambda: run.export(tmp / "pair.afa")), (store, "1 value(s)")


@case("A09", fix="import its runs into a store with `asyncflow import`")
async def _a09(tmp: Path) -> Raised:
    _, path = await pair_archive(tmp)
    return await run_error(Pair, tmp, store_path=Path(path)), (path, "read-only")


@case("A10", fix="export them with `asyncflow export`")
async def _a10(tmp: Path) -> Raised:
    store = await pair_store(tmp)
    return raised(lambda: asyncflow.read_archive(store)), (store, "not a run archive")


@case("A11", fix="check the path")
async def _a11(tmp: Path) -> Raised:
    path = str(tmp / "nowhere.afa")
    return raised(lambda: asyncflow.import_archive(path, store=tmp / "store.db")), (path,)


@case("A12", fix="ask for a fresh copy of the archive")
async def _a12(tmp: Path) -> Raised:
    _, path = await pair_archive(tmp)
    edit_archive(path, "UPDATE store_info SET value = '{\"format\": ' WHERE key = 'archive'")
    return raised(lambda: asyncflow.read_archive(path)), (path, "not valid JSON")


@case("A13", fix="ask for a fresh copy of the archive")
async def _a13(tmp: Path) -> Raised:
    _, path = await pair_archive(tmp)
    edit_archive(path, "UPDATE store_info SET value = '{\"runs\": []}' WHERE key = 'archive'")
    return raised(lambda: asyncflow.read_archive(path)), (path, "lacks")


@case("A14", fix="ask for a fresh copy of the archive")
async def _a14(tmp: Path) -> Raised:
    _, path = await pair_archive(tmp)
    # Two indexes of runs swap their pages: the schema reads as asyncflow's, but the index
    # entries no longer match the table.
    with contextlib.closing(sqlite3.connect(path)) as conn:
        pages = dict(conn.execute("SELECT name, rootpage FROM sqlite_master WHERE type = 'index'"))
    edit_archive(
        path,
        "PRAGMA writable_schema = ON",
        f"UPDATE sqlite_master SET rootpage = {pages['runs_by_uid']} WHERE name = 'runs_by_flow'",
        f"UPDATE sqlite_master SET rootpage = {pages['runs_by_flow']} WHERE name = 'runs_by_uid'",
    )
    return raised(lambda: Flow("Pair", store=path)), (path, "table runs broken")


@case("A15", fix="ask for a fresh copy of the archive")
async def _a15(tmp: Path) -> Raised:
    _, path = await pair_archive(tmp)
    edit_archive(path, "UPDATE tasks SET stdout = 'something else'")
    return raised(lambda: Flow("Pair", store=path)), (path, "digest")


@case("A16", fix="ask for a fresh copy of the archive")
async def _a16(tmp: Path) -> Raised:
    _, path = await pair_archive(tmp)
    edit_archive(
        path,
        "UPDATE store_info SET value = json_set(value, '$.runs[0].id', 7) WHERE key = 'archive'",
    )
    return raised(lambda: Flow("Pair", store=path)), (path, "manifest lists")


@case("A17", fix="ask for a fresh copy of the archive")
async def _a17(tmp: Path) -> Raised:
    _, path = await pair_archive(tmp)
    edit_archive(path, f"DELETE FROM blobs WHERE sha IN {X_BLOB}", redigest=True)
    return raised(lambda: Flow("Pair", store=path)), (path, "1 value(s)")


@case("A18", fix="ask for a fresh copy of the archive")
async def _a18(tmp: Path) -> Raised:
    _, path = await pair_archive(tmp)
    edit_archive(path, f"UPDATE blobs SET data = X'02' WHERE sha IN {X_BLOB}")  # x = 2, not 1
    task = Flow("Pair", store=path)["1"]["start"].task  # the records are intact: opens fine
    return raised(lambda: task.data.x), (path, "do not match its hash")


@case("A19", fix="ask for a fresh copy of the archive")
async def _a19(tmp: Path) -> Raised:
    _, path = await pair_archive(tmp)
    edit_archive(path, f"UPDATE blobs SET size = -1 WHERE sha IN {X_BLOB}", redigest=True)
    target = tmp / "target.db"
    return raised(lambda: asyncflow.import_archive(path, store=target)), (path, "bad size")


@case("A20", fix="ask for a fresh copy of the archive")
async def _a20(tmp: Path) -> Raised:
    _, path = await pair_archive(tmp)
    edit_archive(path, f"UPDATE blobs SET data = X'02' WHERE sha IN {X_BLOB}")
    target = tmp / "target.db"
    return raised(lambda: asyncflow.import_archive(path, store=target)), (path, "its hash")


@case("A21", fix="ask for a fresh copy of the archive")
async def _a21(tmp: Path) -> Raised:
    _, path = await pair_archive(tmp)
    # Covering one's tracks does not help: the field must still have its type.
    edit_archive(
        path,
        "UPDATE store_info SET value = json_set(value, '$.exported_at', 'yesterday') "
        "WHERE key = 'archive'",
        redigest=True,
    )
    return raised(lambda: asyncflow.read_archive(path)), (path, "'exported_at'")


@case("A22", fix="ask for a fresh copy of the archive")
async def _a22(tmp: Path) -> Raised:
    _, path = await pair_archive(tmp)
    edit_archive(
        path,
        "DROP TABLE blob_chunks",
        "CREATE VIEW blob_chunks AS SELECT sha, 0 AS idx, data FROM blobs",
        redigest=True,
    )
    return raised(lambda: Flow("Pair", store=path)), (path, "'blob_chunks'")


@case("A23", fix="ask for a fresh copy of the archive")
async def _a23(tmp: Path) -> Raised:
    _, path = await pair_archive(tmp)
    edit_archive(path, "UPDATE tasks SET started_at = 'early'", redigest=True)
    return raised(lambda: Flow("Pair", store=path)), (path, "tasks", "started_at: text")


@case("A61", fix="Ask for a fresh copy of the archive")
async def _a61(tmp: Path) -> Raised:
    import msgpack

    from asyncflow._codecs import content_hasher

    _, path = await pair_archive(tmp)
    meta = msgpack.packb({"descr": "|V0", "shape": [10**9], "order": "C", "scalar": False})
    sha = content_hasher("numpy", meta, 0).digest()
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "INSERT INTO blobs (sha, encoding, meta, size, data, nchunks) "
            "VALUES (?, 'numpy', ?, 0, x'', 0)",
            (sha, meta),
        )
        conn.execute("UPDATE artifacts SET sha = ? WHERE name = 'x'", (sha,))
    edit_archive(path, redigest=True)
    return raised(lambda: Flow("Pair", store=path)), (path, "zero-width dtype")


@case("A62", fix="write the archive to another file")
async def _a62(tmp: Path) -> Raised:
    store = await pair_store(tmp)
    run = Flow("Pair", store=store)["1"]
    return raised(lambda: run.export(store, overwrite=True)), (store, "would destroy")


@case("A41", fix="export to a folder you may write")
async def _a41(tmp: Path) -> Raised:
    run = Flow("Pair", store=await pair_store(tmp))["1"]
    folder = tmp / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):  # root writes anyway: a folder no one may create in
        folder = Path("/proc")
    path = str(folder / "pair.afa")
    try:
        return raised(lambda: run.export(path)), (path, "read-only")
    finally:
        (tmp / "ro").chmod(0o755)


@case("A181", fix="ask for a fresh copy of the archive")
async def _a181(tmp: Path) -> Raised:
    _, path = await pair_archive(tmp)
    edit_archive(path, "UPDATE events SET data = x'c1c1'", redigest=True)
    return raised(lambda: Flow("Pair", store=path)), (path, "events", "not valid msgpack")


@case("A211", fix="Import it into a store with the asyncflow that wrote it")
async def _a211(tmp: Path) -> Raised:
    from asyncflow._store._schema import APPLICATION_ID, migrate

    path = str(tmp / "schema2.afa")  # an archive from before the columns of schema 3
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        migrate(conn, 0, until=2)
        manifest = json.dumps({"format": "asyncflow-archive/1", "asyncflow_version": "0.0.2"})
        conn.execute("INSERT INTO store_info VALUES ('archive', ?)", (manifest,))
    return raised(lambda: Flow("Pair", store=path)), (path, "'0.0.2'", "schema 2")


# --- U: safe loading (pickles and trust) ----------------------------------------------------


def pickled_run(tmp: Path, **options: Any) -> str:
    """Store with run Theirs/1, whose end task holds a pickled artifact ``point``."""
    path = store_of(tmp)
    write_run(path, "Theirs", [T("end", artifacts={"point": tf.Point(3)})], **options)
    return path


def theirs_point(path: str, *, trust: bool = False) -> Callable[[], object]:
    return lambda: Flow("Theirs", store=path, trust=trust)["1"].end_task.data.point


async def failed_trust_flow(tmp: Path) -> str:
    """TrustFlow's run 1, whose join failed: every pickle before it is stored."""
    path, fail = store_of(tmp), tmp / "fail"
    fail.touch()
    await run_error(tf.TrustFlow, tmp, fail=str(fail))
    fail.unlink()
    return path


@case("U01", fix="trust it with `asyncflow trust Theirs/1 --store")
async def _u01(tmp: Path) -> Raised:
    archive = tmp / "theirs.afa"
    Flow("Theirs", store=pickled_run(tmp, trusted=False))["1"].export(archive)
    target = str(tmp / "mine.db")
    asyncflow.import_archive(archive, store=target)
    return raised(theirs_point(target)), ("'point'", "Theirs/1/end/1", "imported")


@case("U02", fix="trust it with `asyncflow trust Theirs/1 --store")
async def _u02(tmp: Path) -> Raised:
    path = pickled_run(tmp, trusted=False)
    return raised(theirs_point(path)), ("'point'", "Theirs/1/end/1", "pickle")


@case("U03", fix="trust it with `asyncflow trust Theirs/1 --store")
async def _u03(tmp: Path) -> Raised:
    path = pickled_run(tmp, key=TrustKey(str(tmp / "someone" / "key")))
    return raised(theirs_point(path)), ("'point'", "Theirs/1/end/1", TrustKey().path)


@case("U04", fix="trust=True), or import it with `asyncflow import")
async def _u04(tmp: Path) -> Raised:
    archive = str(tmp / "theirs.afa")
    Flow("Theirs", store=pickled_run(tmp))["1"].export(archive)
    return raised(theirs_point(archive)), ("'point'", archive, "Flow('Theirs', store=")


@case("U05", fix="Restore the store file from a copy")
async def _u05(tmp: Path) -> Raised:
    path = pickled_run(tmp)
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE blobs SET data = X'80054e2e' WHERE encoding = 'pickle'")  # None
    return raised(theirs_point(path, trust=True)), ("'point'", "Theirs/1/end/1")


@case("U06", fix="trust that run with `asyncflow trust Resigned/1 --store")
async def _u06(tmp: Path) -> Raised:
    exc = await step_failed(tf.Resigned, tmp, db=store_of(tmp))
    return exc, ("'end'", "Resigned/1", "'point'")


@case("U07", fix="Restore the store file from a copy")
async def _u07(tmp: Path) -> Raised:
    path = await failed_trust_flow(tmp)
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE blobs SET data = X'80054e2e' WHERE sha = ?", (sha_of(tf.Point(10)),))
    try:
        await tf.TrustFlow(store=path, echo=False).resume()
    except StepFailed as exc:
        return exc, ("'join'", "TrustFlow/2", "'piece'")
    raise AssertionError("the resume ran")


@case("U08", fix="trust it first with `asyncflow trust TrustFlow/1 --store")
async def _u08(tmp: Path) -> Raised:
    path = await failed_trust_flow(tmp)
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE runs SET trusted = 0")
        conn.execute("UPDATE blobs SET mac = NULL")
    try:
        await tf.TrustFlow(store=path, echo=False).resume()
    except asyncflow.UntrustedArtifactError as exc:
        return exc, ("TrustFlow/1", "task TrustFlow/1/")
    raise AssertionError("the resume ran")


@case("U09", fix="Restore the store from a copy, or ask the run's author for a fresh copy")
async def _u09(tmp: Path) -> Raised:
    path = pickled_run(tmp, trusted=False)
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE blobs SET data = X'80054e2e' WHERE encoding = 'pickle'")
    run = Flow("Theirs", store=path)["1"]
    return raised(run.trust), ("'point'", "Theirs/1/end/1", path, "nothing was trusted")


@case("U10", fix="or import it trusted with `asyncflow import")
async def _u10(tmp: Path) -> Raised:
    archive = str(tmp / "theirs.afa")
    Flow("Theirs", store=pickled_run(tmp))["1"].export(archive)
    run = Flow("Theirs", store=archive)["1"]
    return raised(run.trust), ("Theirs/1", archive, "trust=True")


@contextlib.contextmanager
def key_file(path: Path) -> Iterator[None]:
    saved = os.environ["ASYNCFLOW_KEY_FILE"]
    os.environ["ASYNCFLOW_KEY_FILE"] = str(path)
    try:
        yield
    finally:
        os.environ["ASYNCFLOW_KEY_FILE"] = saved


@case("U11", fix="set ASYNCFLOW_KEY_FILE to a file in a folder you may write")
async def _u11(tmp: Path) -> Raised:
    (tmp / "folder").symlink_to(tmp / "gone")  # a dangling link where the key's folder goes
    key = tmp / "folder" / "key"
    with key_file(key):
        return await run_error(Pair, tmp), (str(key), "cannot create")


@case("U12", fix="delete it to make a new key")
async def _u12(tmp: Path) -> Raised:
    key = tmp / "short-key"
    key.write_bytes(b"not 32 bytes")
    with key_file(key):
        return await run_error(Pair, tmp), (str(key), "12 bytes")


@case("U51", fix="The flow's code must be importable wherever its pickled values are read")
async def _u51(tmp: Path) -> Raised:
    path, folder = store_of(tmp), str(tmp)
    try:
        write_run(path, "Theirs", [T("end", artifacts={"thing": af_flows.make_thing(folder)})])
        af_flows.forget_thing(folder)
        read = lambda: Flow("Theirs", store=path)["1"].end_task.data.thing  # noqa: E731
        return raised(read), ("'thing'", "Theirs/1/end/1", f"'{af_flows.MODULE}'")
    finally:
        af_flows.forget_thing(folder)


@case("U52", fix="run from the folder that holds it, or add that folder to PYTHONPATH")
async def _u52(tmp: Path) -> Raised:
    try:
        exc = await step_failed(af_flows.Missing, tmp, folder=str(tmp))
        return exc, ("'thing'", "'end'", "Missing/1", f"'{af_flows.MODULE}'")
    finally:
        af_flows.forget_thing(str(tmp))


def amplifying_run(tmp: Path, **options: Any) -> str:
    """Store with run Theirs/1, whose end task holds ``many``: 700,000 empty frozensets,
    2.8 MB of msgpack that decode into ~160 MB of Python (past the default budget)."""
    path = store_of(tmp)
    write_run(path, "Theirs", [T("end", artifacts={"many": [frozenset()] * 700_000})], **options)
    return path


def theirs_many(path: str) -> Callable[[], object]:
    return lambda: Flow("Theirs", store=path)["1"].end_task.data.many


@case("U31", fix="open it with Flow('Theirs', store=")
async def _u31(tmp: Path) -> Raised:
    archive = str(tmp / "theirs.afa")
    Flow("Theirs", store=amplifying_run(tmp))["1"].export(archive)
    return raised(theirs_many(archive)), ("'many'", "Theirs/1/end/1", archive)


@case("U32", fix="trust it with `asyncflow trust Theirs/1 --store")
async def _u32(tmp: Path) -> Raised:
    path = amplifying_run(tmp, trusted=False)
    return raised(theirs_many(path)), ("'many'", "Theirs/1/end/1")


@case("U33", fix="trust it with `asyncflow trust Victim/1 --store")
async def _u33(tmp: Path) -> Raised:
    from asyncflow._store._store import Store
    from tests.flows.round2_flows import Victim
    from tests.test_attacker_round2 import plant_amplifier

    path = store_of(tmp)
    await Victim(store=path, echo=False).run()
    Store.close_all()
    plant_amplifier(path, 4_000_000)
    try:
        await Victim(store=path, echo=False).resume("1", step="end")
    except StepFailed as exc:
        return exc, ("'x'", "Victim/1")
    raise AssertionError("the resume loaded the crafted value")


@case("U91", fix="make it private with `chmod 600")
async def _u91(tmp: Path) -> Raised:
    key = tmp / "open-key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o644)
    with key_file(key):
        return await run_error(Pair, tmp), (str(key), "0644", "not private")


@case("U92", fix="move it away so that a new key is made")
async def _u92(tmp: Path) -> Raised:
    key = tmp / "fifo-key"
    os.mkfifo(key)
    with key_file(key):
        return await run_error(Pair, tmp), (str(key), "not a regular file")


# --- K: keeping the store tidy (tags, gc, stats) --------------------------------------------


@case("K01", fix="pass e.g. keep_last=10")
async def _k01(tmp: Path) -> Raised:
    path = await pair_store(tmp)
    exc = raised(lambda: asyncflow.gc(path, flow="Pair"))
    with Flow("Pair", store=path) as flow:
        assert flow.latest_run is not None  # nothing deleted
    return exc, ("keep_last", "older_than", "tag")


@case("K02", fix="text such as '30m'")
async def _k02(tmp: Path) -> Raised:
    path = await pair_store(tmp)
    with pytest.raises(asyncflow.UsageError) as info:
        await asyncflow.agc(path, older_than="3 days")
    return info.value, ("older_than='3 days'",)


@case("K03", fix="must be a whole number >= 1")
async def _k03(tmp: Path) -> Raised:
    path = await pair_store(tmp)
    exc = raised(lambda: asyncflow.gc(path, keep_last=0))
    with Flow("Pair", store=path) as flow:
        assert flow.latest_run is not None  # nothing deleted
    return exc, ("keep_last=0",)


@case("K04", fix="resume another run")
async def _k04(tmp: Path) -> Raised:
    # What the writer of a resume meets when gc deleted the origin after the resume read it.
    from asyncflow._store._write_ops import CreateRun
    from asyncflow._store._writer import Writer

    path = await pair_store(tmp)
    writer = Writer(path, lambda shas: None)
    try:
        create = CreateRun("Pair", "{}", 0.0, (), {}, origin_run_id=7)
        writer.submit(create)
        exc = raised(lambda: create.future.result(timeout=30))
    finally:
        writer.close()
    return exc, ("Pair/7", path)


@case("K05", fix="pass e.g. keep_last=10")
async def _k05(tmp: Path) -> Raised:
    code, _, err = cli("gc", "--flow", "Pair", "--store", await pair_store(tmp))
    return CommandLine(err, code), ("--keep-last",)


@case("K81", fix="remove it from the tag")
async def _k81(tmp: Path) -> Raised:
    return raised(lambda: Pair(store=store_of(tmp), tags=["bad\ud800"])), ("'bad\\ud800'",)


@case("K141", fix="choose a tag without that prefix")
async def _k141(tmp: Path) -> Raised:
    return raised(lambda: Pair(store=store_of(tmp), tags=["user:bob"])), ("'user:bob'", "'user:'")


@case("K142", fix="remove only user tags")
async def _k142(tmp: Path) -> Raised:
    run = Flow("Pair", store=await pair_store(tmp))["1"]
    return raised(lambda: run.remove_tag("runtime:dev")), ("'runtime:dev'", "system tag")


# --- running the cases ----------------------------------------------------------------------


def as_error(seen: dict[str, Any]) -> BaseException:
    """An error a child process reported, rebuilt as the asyncflow type it named."""
    assert "type" in seen, f"expected an error, got {seen}"
    kind = getattr(asyncflow, seen["type"])
    assert issubclass(kind, AsyncflowError)
    return kind(seen["message"])  # type: ignore[call-arg]


def test_every_line_of_the_catalogue_has_a_case_and_every_case_a_line() -> None:
    documented = catalogue()
    assert len(documented) > 100
    assert sorted(documented) == sorted(CASES)


def test_the_readme_links_the_catalogue() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/errors.md)" in readme


@pytest.mark.anyio
@pytest.mark.parametrize("entry", sorted(CASES))
async def test_catalogue_line(entry: str, tmp_path: Path) -> None:
    line = catalogue()[entry]
    case_ = CASES[entry]
    exc, names = await case_.trigger(tmp_path)
    if isinstance(exc, CommandLine):
        assert line.error == f"exit code {exc.code}"
        assert str(exc).count("\n") == 0, "one line"
    else:
        # For a step's failure, the documented type is that of StepFailed's cause.
        error = exc.__cause__ if isinstance(exc, StepFailed) and entry != "S01" else exc
        if entry == "M239":  # a spin that failed: StepFailed, whatever the step raised
            error = exc
        assert type(error).__name__ == line.error, repr(error)
    message = str(exc)
    assert line.pattern.search(message), f"{entry}: the catalogue's text is not in {message!r}"
    for name in names:
        assert name in message, f"{entry}: {name!r} not named in {message!r}"
    assert case_.fix in message, f"{entry}: {case_.fix!r} (what to do) not in {message!r}"
    assert "Traceback" not in message


# --- disk full, in detail -------------------------------------------------------------------


@contextlib.contextmanager
def tight_store(extra_pages: int) -> Iterator[None]:
    """Stores opened meanwhile may grow only ``extra_pages`` pages: a disk about to fill."""
    real = writer_module.open_writer

    def open_tight(path: str) -> sqlite3.Connection:
        conn = real(path)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages + extra_pages}")
        return conn

    writer_module.open_writer = open_tight
    try:
        yield
    finally:
        writer_module.open_writer = real


def query(path: str, sql: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql).fetchall()


@pytest.mark.anyio
async def test_a_full_disk_mid_run_fails_the_run_and_keeps_the_store_whole(store: str) -> None:
    assert (4 * PAGE_SIZE) < 4_000_000  # Grows' array cannot fit in the room left
    with tight_store(extra_pages=4):
        first = await Pair(store=store, echo=False).run()
        with pytest.raises(StoreError) as info:
            await Grows(store=store, echo=False).run()
        # the limit stays: a small run fits in the room left, in the same process
        after = await Pair(store=store, echo=False).run()
    message = str(info.value)
    assert "Grows/2" in message and store in message and "disk holding it is full" in message
    assert not isinstance(info.value, StepFailed)

    assert query(store, "PRAGMA integrity_check") == [("ok",)]
    assert query(store, "SELECT count(*) FROM artifacts WHERE sha NOT IN (SELECT sha FROM blobs)")[
        0
    ] == (0,)
    with Flow("Pair", store=store) as flow:
        assert flow[first.id].status == "succeeded"
        assert flow[first.id].data.total == 2
        assert after.successful and flow[after.id].data.total == 2
    with Flow("Grows", store=store) as flow:
        failed = flow["2"]
        assert failed.status == "failed"
        assert failed.finished
        assert failed.error is not None and "disk holding it is full" in failed.error
        assert store in failed.error
        assert failed["start"].task.data.label == "grows"  # what was saved reads back
        assert "middle" not in failed and "end" not in failed  # nothing half-written
        assert flow.latest_successful_run is None


# --- store problems through every door -------------------------------------------------------


async def make_bad(kind: str, path: Path) -> None:
    if kind == "not-sqlite":
        garbage(path)
    elif kind == "another-program":
        other_program(path)
    elif kind == "newer":
        await newer(path)
    elif kind == "truncated":
        await truncated(path)
    elif kind == "empty":
        path.touch()
    elif kind == "folder":
        path.mkdir()
    elif kind == "missing":
        pass
    else:
        raise AssertionError(kind)


BAD_STORES = ["not-sqlite", "another-program", "newer", "truncated", "empty", "folder", "missing"]


@pytest.mark.anyio
@pytest.mark.parametrize("kind", BAD_STORES)
async def test_a_bad_store_is_one_clear_error_everywhere(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.db"
    await make_bad(kind, path)
    before = path.read_bytes() if path.is_file() else None

    def check(exc: BaseException) -> None:
        assert isinstance(exc, StoreError), repr(exc)
        assert not isinstance(exc, sqlite3.Error)
        assert str(path) in str(exc)

    # the client, sync and async
    check(raised(lambda: Flow("Pair", store=str(path))))
    try:
        await Flow.aopen("Pair", store=str(path))
    except Exception as exc:
        check(exc)
    else:
        raise AssertionError("aopen succeeded")
    check(raised(lambda: asyncflow.list_flows(str(path))))

    # the command line: one line, exit code 2
    code, out, err = cli("runs", "--store", str(path))
    assert code == 2 and out == ""
    assert err.startswith("asyncflow: error: ") and err.count("\n") == 1
    assert str(path) in err

    # running a flow: refused, and the file left as it was; an empty file and a missing one
    # are new stores (that is what SQLite does), so the run succeeds there
    if kind in ("empty", "missing"):
        run = await Pair(store=str(path), echo=False).run()
        assert run.successful and Flow("Pair", store=str(path)).latest_run is not None
    else:
        check(await run_error(Pair, tmp_path, store_path=path))
        assert (path.read_bytes() if path.is_file() else None) == before


def test_the_command_line_prints_no_traceback_for_a_bad_store(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    garbage(path)
    done = subprocess.run(
        [sys.executable, "-m", "asyncflow", "runs", "--store", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("asyncflow: error: the store file")


@pytest.mark.anyio
async def test_the_flow_command_line_reports_a_bad_store_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    garbage(path)
    flow_file = tmp_path / "pair_flow.py"
    flow_file.write_text(
        "from tests.flows.catalogue import Pair\n\nif __name__ == '__main__':\n    Pair.main()\n"
    )
    done = subprocess.run(
        [sys.executable, str(flow_file), "run", "--store", str(path), "--quiet"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert str(path) in done.stderr and "not an asyncflow store" in done.stderr


# --- truncated and empty files ----------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("fraction", [0.02, 0.25, 0.5, 0.75, 0.99])
async def test_a_truncated_store_gives_a_store_error_on_open_or_read(
    fraction: float, tmp_path: Path
) -> None:
    path = tmp_path / "cut.db"
    await truncated(path, fraction)
    errors: list[BaseException] = []

    def attempt(read: Callable[[], object]) -> None:
        try:
            read()
        except StoreError as exc:
            errors.append(exc)

    def read_everything() -> None:
        with Flow("Chunky", store=str(path)) as flow:
            for run in flow:
                for step_ in run:
                    for task in step_:
                        for name in task.data:
                            task.data[name]

    attempt(read_everything)
    assert errors, "a store cut short read back whole"
    assert all(str(path) in str(exc) for exc in errors)
    with pytest.raises(StoreError):
        await Pair(store=str(path), echo=False).run()


@pytest.mark.anyio
async def test_a_damaged_value_is_a_store_error_read_either_way(tmp_path: Path) -> None:
    path = tmp_path / "damaged.db"
    await chunky_store(path)
    zero_root_page(path, "blob_chunks")
    async with Flow.aopen("Chunky", store=str(path)) as flow:
        run = await flow.aget("1")
        step_ = await run.astep("start")
        assert await step_.task.anames() == ["blob"]  # what is intact still reads
        with pytest.raises(StoreError, match="it is damaged") as info:
            await step_.task.adata("blob")
    assert str(path) in str(info.value)
    with Flow("Chunky", store=str(path)) as again, pytest.raises(StoreError, match="damaged"):
        again["1"]["start"].task["blob"].data  # noqa: B018


@pytest.mark.anyio
async def test_an_empty_file_is_a_new_store_for_running_but_not_for_reading(
    tmp_path: Path,
) -> None:
    path = tmp_path / "touched.db"
    path.touch()
    with pytest.raises(StoreError, match="is empty: it holds no runs"):
        Flow("Pair", store=str(path))
    run = await Pair(store=str(path), echo=False).run()
    assert run.successful
    with Flow("Pair", store=str(path)) as flow:
        assert flow.latest_run is not None and flow.latest_run.data.total == 2


# --- read-only locations (real permissions, in a child process) ------------------------------

# The child process runs a flow, reads with the sync and async client and lists runs on the
# command line, reporting each outcome as one JSON line.
CHILD = r"""
import asyncio, contextlib, io, json, sys
from asyncflow import Flow
from asyncflow._cli import main
from tests.flows.catalogue import Pair

path = sys.argv[1]
seen = {}

def report(label, fn):
    try:
        seen[label] = {"value": fn()}
    except BaseException as exc:
        seen[label] = {"type": type(exc).__name__, "message": str(exc)}

def listing():
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["runs", "--store", path])
    return {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}

async def aread():
    async with Flow.aopen("Pair", store=path) as flow:
        run = await flow.alatest_run()
        return await run.adata("total")

report("run", lambda: asyncio.run(Pair(store=path, echo=False).run()).status)
report("client", lambda: Flow("Pair", store=path).latest_run.data.total)
report("aclient", lambda: asyncio.run(aread()))
report("cli", listing)
print(json.dumps(seen))
"""

_NO_OVERRIDE = "-dac_override,-dac_read_search"


def unprivileged(argv: list[str]) -> list[str]:
    """``argv`` run so that file permissions apply (root drops its override first)."""
    if os.geteuid() != 0:
        return argv
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permissions cannot be made to apply")
    return [setpriv, f"--bounding-set={_NO_OVERRIDE}", f"--inh-caps={_NO_OVERRIDE}", *argv]


# What the child met, by kind of location: each is set up and visited once per session.
_LOCKED_AWAY: dict[str, dict[str, Any]] = {}


async def locked_away(tmp: Path, where: str) -> dict[str, Any]:
    """A store made unwritable (``file``), in an unwritable folder (``folder``), or a new
    store in an unwritable folder (``new``); what a child process then meets, by action."""
    if where not in _LOCKED_AWAY:
        _LOCKED_AWAY[where] = await _visit_locked_away(tmp, where)
    return _LOCKED_AWAY[where]


async def _visit_locked_away(tmp: Path, where: str) -> dict[str, Any]:
    source = tmp / "source.db"
    await Pair(store=str(source), echo=False).run()
    folder = tmp / "locked"
    folder.mkdir()
    path = folder / ("new.db" if where == "new" else "store.db")
    if where != "new":
        shutil.copyfile(source, path)  # the file alone is the whole store
    if where == "file":
        path.chmod(0o444)
    else:
        folder.chmod(0o555)
    try:
        done = subprocess.run(
            unprivileged([sys.executable, "-c", CHILD, str(path)]),
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
            check=False,
        )
    finally:
        folder.chmod(0o755)
        if path.exists():
            path.chmod(0o644)
    assert done.returncode == 0, done.stderr
    seen: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    seen["path"], seen["folder"] = str(path), str(folder)
    return seen


@pytest.mark.anyio
@pytest.mark.parametrize("where", ["file", "folder"])
async def test_a_store_you_may_not_write_still_reads(where: str, tmp_path: Path) -> None:
    seen = await locked_away(tmp_path, where)
    assert seen["run"]["type"] == "StoreError"
    assert "read-only" in seen["run"]["message"]
    assert seen["client"] == {"value": 2}
    assert seen["aclient"] == {"value": 2}
    listing = seen["cli"]["value"]
    assert listing["code"] == 0 and "Pair" in listing["stdout"] and listing["stderr"] == ""


@pytest.mark.anyio
async def test_a_new_store_in_a_folder_you_may_not_write(tmp_path: Path) -> None:
    seen = await locked_away(tmp_path, "new")
    assert seen["run"]["type"] == "StoreError"
    for label in ("client", "aclient"):
        assert seen[label]["type"] == "StoreError"
        assert seen[label]["message"].startswith("there is no store at")
    listing = seen["cli"]["value"]
    assert listing["code"] == 2 and listing["stderr"].count("\n") == 1
    assert not os.path.exists(seen["path"])
