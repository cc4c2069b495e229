"""Bad input never ends in a traceback, a hang or silently different data.

Flow definitions (a class attribute named like an artifact, steps named like command words),
odd artifact names, lone surrogates, open files, huge ints, deep JSON, odd IncludeFiles,
terminal escapes from a store, and abbreviated options: each is stored exactly or refused
with an error that says what, where and what to do.
"""

from __future__ import annotations

import inspect
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from asyncflow import (
    ArtifactSerializationError,
    AsyncflowError,
    Flow,
    FlowSpec,
    FlowValidationError,
    ParameterError,
    StepFailed,
    UsageError,
)
from asyncflow._cli import flow_main
from asyncflow._cli import main as asyncflow_cli
from asyncflow._spec._params import INCLUDE_MAX_BYTES, IncludeFile
from tests.flows import bad_input as bf
from tests.flows.command_words import CommandWordsFlow

ROOT = Path(__file__).resolve().parents[1]
FLOWS_FILE = Path(bf.__file__)


def script(path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("ASYNCFLOW_STORE", None)
    return subprocess.run(
        [sys.executable, str(path), *argv], capture_output=True, text=True, timeout=60, env=env
    )


async def failure(flow: FlowSpec, **params: Any) -> BaseException:
    """The cause of the StepFailed that running ``flow`` raises."""
    with pytest.raises(StepFailed) as caught:
        await flow.run(**params)
    assert caught.value.__cause__ is not None
    return caught.value.__cause__


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = asyncflow_cli(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- finding 8: a class attribute never hides an artifact ----------------------------------


@pytest.mark.anyio
async def test_a_class_attribute_is_a_constant_that_no_step_can_hide(store: str) -> None:
    flow = bf.ConstFlow(store=store, echo=False)
    cause = await failure(flow, mode="set")  # setattr(self, "x", 2): seen as the step runs
    assert isinstance(cause, AttributeError)
    message = str(cause)
    assert "cannot set self.x in ConstFlow: 'x' is a class attribute of ConstFlow" in message
    assert "such as self.x_value" in message and "remove it from the class" in message
    run = await flow.run(mode="read")  # reading it in every step is fine
    assert run["end"].task.data.seen == (1, 0)


@pytest.mark.anyio
async def test_a_flow_whose_source_sets_a_class_attribute_is_refused_before_it_runs(
    store: str,
) -> None:
    cases = [
        (bf.ConstWriteFlow, "start", "the step sets self.x", "'x' is a class attribute"),
        (bf.ConstAugmentFlow, "end", "the step sets self.count", "'count' is a class attr"),
        (bf.ConstCatchFlow, "start", "@catch(var='error') sets self.error", "'error' is a"),
    ]
    for flow_cls, step_name, *phrases in cases:
        with pytest.raises(FlowValidationError) as caught:
            await flow_cls(store=store, echo=False).run()
        assert caught.value.step == step_name
        message = str(caught.value)
        assert all(p in message for p in phrases), message
        assert bf.__file__ in message and "remove" in message
    assert not os.path.exists(store)
    line = inspect.getsourcelines(bf.ConstWriteFlow.start)[1] + 3  # the line of self.x = 2
    with pytest.raises(FlowValidationError, match=f"at {bf.__file__}:{line}:"):
        await bf.ConstWriteFlow(store=store).run()


# --- finding 9: steps may take command words; one reserved-name rule ----------------------


def test_steps_named_check_and_show_run_and_flow_py_check_still_works(tmp_path: Path) -> None:
    flow_file = ROOT / "tests" / "flows" / "command_words.py"
    check = script(flow_file, "check")
    assert check.returncode == 0, check.stderr
    assert check.stdout == "CommandWordsFlow is valid: 4 steps.\n"
    show = script(flow_file, "show")
    assert show.returncode == 0 and "check" in show.stdout and "show" in show.stdout
    store = str(tmp_path / "store.db")
    run = script(flow_file, "run", "--store", store, "--quiet")
    assert run.returncode == 0, run.stderr
    assert Flow("CommandWordsFlow", store).latest_run.data.seen == ["start", "check", "show"]


# --- 3h: no option is ever prefix-matched --------------------------------------------------


def test_an_abbreviated_option_is_unknown_not_another_parameter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "store.db")
    with pytest.raises(SystemExit) as exited:
        flow_main(CommandWordsFlow, ["run", "--epoch", "3", "--store", store])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --epoch 3" in err and err.count("\n") == 1
    assert not os.path.exists(store)  # nothing ran
    code, _, err = cli(capsys, "runs", "--lim", "1", "--store", store)
    assert code == 2 and "unrecognized arguments: --lim" in err
    proc = script(FLOWS_FILE, "JsonFlow", "run", "--epoch", "3", "--store", store)
    assert proc.returncode == 2 and "unrecognized arguments: --epoch" in proc.stderr
    assert "Traceback" not in proc.stderr


# --- 3d: artifact names --------------------------------------------------------------------


@pytest.mark.anyio
async def test_an_artifact_name_must_be_an_identifier_wherever_it_is_set(store: str) -> None:
    flow = bf.NamesFlow(store=store, echo=False)
    for mode, name in (("empty", ""), ("space", "a b"), ("dict", "")):
        cause = await failure(flow, mode=mode)
        assert isinstance(cause, ArtifactSerializationError), (mode, cause)
        assert cause.artifact == name and cause.step == "start"
        assert f"artifact named {name!r}" in str(cause)
        assert "name it like a variable" in str(cause)
    run = await bf.ConstFlow(store=store, echo=False).run()
    task = run["end"].task
    for bad in ("", " ", "a/b"):
        with pytest.raises(AsyncflowError, match="has no artifact"):
            task[bad]
    with pytest.raises(AttributeError):
        getattr(task.data, "")


# --- 3e: lone surrogates -------------------------------------------------------------------


@pytest.mark.anyio
async def test_lone_surrogates_round_trip_and_never_stop_a_run_from_being_saved(
    store: str,
) -> None:
    flow = bf.SurrogateFlow(store=store, echo=False)
    run = await flow.run()
    start = run["start"].task
    assert start.data.s == "\ud800"
    assert start.data.d == {"k\udcff": [("\ud800x", {"\udfff": b"\xff"})], "plain": "ok"}
    assert start.data.keys == {"\udc80": 1, ("t\ud800",): frozenset({"\ud801"})}
    assert run["end"].task.data.back == (start.data.s, start.data.d)
    assert start.stdout == "printed \\ud800 here\n"  # the log keeps it, escaped
    assert start.stderr == "and \\udcff to stderr\n"

    with pytest.raises(StepFailed) as caught:
        await flow.run(mode="raise")
    failed = caught.value.run
    assert failed.status == "failed"  # recorded, not "could not be saved"
    assert "bad \\ud800 value" in (failed["start"].task.exception or "")
    assert "bad \\ud800 value" in (failed.error or "")


@pytest.mark.anyio
async def test_a_tag_with_a_lone_surrogate_is_refused_before_anything_runs(store: str) -> None:
    with pytest.raises(UsageError, match="lone surrogate"):
        bf.ConstFlow(store=store, tags=["ok", "bad\ud800"])
    assert not os.path.exists(store)
    # Bytes that are not UTF-8 on the command line arrive as lone surrogates.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(FLOWS_FILE), "JsonFlow", "run", "--tag", b"bad\xff", "--store", store],
        capture_output=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 2 and b"lone surrogate" in proc.stderr, proc.stderr
    assert proc.stderr.count(b"\n") == 1
    assert not os.path.exists(store)


# --- 3f: handles ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_an_open_file_or_socket_is_never_stored(store: str) -> None:
    flow = bf.HandleFlow(store=store, echo=False)
    try:
        await _refused_handles(flow)
    finally:
        while bf.OPENED:
            bf.OPENED.pop().close()
    run = await flow.run(mode="buffers")  # in-memory buffers hold data, not handles
    data = run["start"].task.data
    assert data.buf.getvalue() == b"bytes" and data.text.getvalue() == "text"


async def _refused_handles(flow: FlowSpec) -> None:
    for mode, name in (("file", "f"), ("binary", "f"), ("nested", "found"), ("socket", "sock")):
        cause = await failure(flow, mode=mode)
        assert isinstance(cause, ArtifactSerializationError), (mode, cause)
        assert cause.artifact == name and cause.step == "start"
        message = str(cause)
        assert f"artifact {name!r} set in step 'start'" in message
        if mode == "socket":
            assert "holds a socket" in message
        else:
            assert "holds an open file" in message and bf.__file__ in message
            assert "store its contents (f.read()) or its path (f.name) instead" in message


# --- 3a: JSON and numbers ------------------------------------------------------------------


@pytest.mark.anyio
async def test_json_nested_too_deep_or_a_number_too_long_is_a_parameter_error(
    store: str,
) -> None:
    flow = bf.JsonFlow(store=store, echo=False)
    deep = "[" * 100_000 + "]" * 100_000
    cases = [
        ("cfg", deep, "nested too deeply to read as JSON"),
        ("cfg", "1" * 5000, "more than 4300 digits"),
        ("cfg", '{"n": ' + "9" * 5000 + "}", "more than 4300 digits"),
        ("count", "7" * 5000, "more than 4300 digits"),
    ]
    for name, value, phrase in cases:
        with pytest.raises(ParameterError) as caught:
            await flow.run(**{name: value})
        assert caught.value.name == name and phrase in str(caught.value)
        assert f"Parameter '{name}' of flow JsonFlow" in str(caught.value)
    nested: Any = []
    for _ in range(100_000):
        nested = [nested]
    with pytest.raises(ParameterError, match="nested too deeply") as caught:
        await flow.run(cfg=nested)  # given from Python
    assert caught.value.name == "cfg"
    assert not os.path.exists(store)


def test_json_too_deep_or_too_long_through_the_command_line(tmp_path: Path) -> None:
    store = str(tmp_path / "store.db")
    for value, phrase in (("[" * 100_000, "nested too deeply"), ("1" * 5000, "4300 digits")):
        proc = script(FLOWS_FILE, "JsonFlow", "run", "--cfg", value, "--store", store)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith("error: Parameter 'cfg' of flow JsonFlow")
        assert phrase in proc.stderr and proc.stderr.count("\n") == 1
    assert not os.path.exists(store)


# --- 3b: IncludeFile -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_include_file_reads_only_regular_files_up_to_its_limit(
    store: str, tmp_path: Path
) -> None:
    # A FIFO is tried in a child process (below): a thread blocked opening one could not be
    # stopped, and would keep this process from exiting.
    flow = bf.IncludeFlow(store=store, echo=False)
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 1025)
    cases = [
        ("/dev/zero", "it is a character device, not a regular file"),
        (str(tmp_path), "it is a folder, not a regular file"),
        (str(big), "it holds more than 1024 bytes, the IncludeFile's max_bytes"),
        ("data\0.bin", "contains a NUL character"),
    ]
    for path, phrase in cases:
        with pytest.raises(ParameterError) as caught:
            await flow.run(data=path)
        assert caught.value.name == "data" and phrase in str(caught.value), str(caught.value)
    assert not os.path.exists(store)
    big.write_bytes(b"x" * 1024)
    run = await flow.run(data=str(big))
    assert run["start"].task.data.size == 1024


def test_include_file_limit_is_documented_and_configurable() -> None:
    assert INCLUDE_MAX_BYTES == 256 << 20
    assert IncludeFile("data").max_bytes == INCLUDE_MAX_BYTES
    assert IncludeFile("data", max_bytes=10).describe()["max_bytes"] == 10
    for bad in (0, -1, 1.5, True, "10"):
        with pytest.raises(AsyncflowError, match="use a positive whole number of bytes"):
            IncludeFile("data", max_bytes=bad)  # type: ignore[arg-type]


def test_include_file_of_dev_zero_or_a_fifo_through_the_command_line(tmp_path: Path) -> None:
    store = str(tmp_path / "store.db")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for path, kind in (("/dev/zero", "a character device"), (str(fifo), "a FIFO (named pipe)")):
        proc = script(FLOWS_FILE, "IncludeFlow", "run", "--data", path, "--store", store)
        assert proc.returncode == 2, proc.stderr  # within the timeout: no hang
        assert f"it is {kind}, not a regular file" in proc.stderr
        assert proc.stderr.count("\n") == 1


# --- 3c: huge ints -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_dump_and_show_print_ints_of_any_size(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await bf.BigIntFlow(store=store, echo=False).run()
    code, out, err = cli(capsys, "dump", "BigIntFlow/1/start/1/big", "--store", store)
    assert code == 0 and err == ""
    with _digits(0):
        assert out == str(10**5000 + 7) + "\n"
        code, out, _ = cli(capsys, "dump", "BigIntFlow/1/start/1/nested", "--store", store)
        assert code == 0 and str(-(10**6000)) in out
    code, out, _ = cli(capsys, "dump", "BigIntFlow/1/start/1/huge", "--store", store)
    assert code == 0 and out.startswith(hex(3**300_000)[:10_000] + "\n... (cut to its first")
    assert "-o FILE" in out  # 119,000 hex digits: cut as any value past 10,000 characters
    code, out, err = cli(capsys, "show", "BigIntFlow/1/start/1", "--store", store)
    assert code == 0 and err == "" and "big" in out and "repr failed" not in out
    assert sys.get_int_max_str_digits() == 4300  # the limit is raised only while printing


class _digits:
    def __init__(self, limit: int) -> None:
        self.limit = limit

    def __enter__(self) -> None:
        self.before = sys.get_int_max_str_digits()
        sys.set_int_max_str_digits(self.limit)

    def __exit__(self, *exc: object) -> None:
        sys.set_int_max_str_digits(self.before)


# --- 3g: terminal escapes from a store -----------------------------------------------------


@pytest.mark.anyio
async def test_the_command_line_never_prints_a_store_s_control_characters(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(StepFailed):
        await bf.EscapeFlow(store=store, echo=False, tags=["tag" + bf.ESCAPES]).run()
    # A store from elsewhere may hold anything: a flow name, a step name, a tag.
    with sqlite3.connect(store) as db:
        db.execute("UPDATE runs SET flow = ?", ("Evil\x1b[31mFlow",))
        db.execute("UPDATE tasks SET step = 'end\x1b]0;x\x07' WHERE step = 'end'")
    evil = "Evil\x1b[31mFlow"
    outputs = []
    for argv in (
        ["runs"],
        ["show", evil],
        ["show", f"{evil}/1"],
        ["show", f"{evil}/1/start"],
        ["show", f"{evil}/1/start/1"],
        ["show", f"{evil}/1/end\x1b]0;x\x07/2"],
        ["logs", f"{evil}/1"],
        ["logs", f"{evil}/1/start/1"],
        ["dump", f"{evil}/1/start/1/label"],
        ["show", f"{evil}/9"],  # an error message listing what the store holds
        ["dump", f"{evil}/1/start/1/nope"],
    ):
        code, out, err = cli(capsys, *argv, "--store", store)
        assert code in (0, 2), (argv, err)
        outputs.append(out + err)
    text = "".join(outputs)
    bad = [c for c in text if (ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F]
    assert bad == []
    assert "\\x1b[31m" in text and "\\x1b]0;title\\x07" in text and "\\x9b2J" in text
    assert "Evil\\x1b[31mFlow" in text and "boom" in text and "out " in text


def test_printable_escapes_control_characters_but_keeps_lines_and_tabs() -> None:
    from asyncflow._cli._format import printable

    assert printable("a\tb\nc") == "a\tb\nc"
    assert printable("\x1b[31m\x07\r\x00\x7f\x9b") == "\\x1b[31m\\x07\\x0d\\x00\\x7f\\x9b"
    assert printable("\ud800é✓") == "\\ud800é✓"
    assert printable(printable("\x1b")) == "\\x1b"


# --- parameters named like the flow command line's own options ---------------------------


def test_no_parameter_takes_a_name_the_flow_command_line_uses(tmp_path: Path) -> None:
    import argparse
    import keyword

    from asyncflow._cli._flow_parser import build_flow_parser as _build
    from asyncflow._spec._names import COMMAND_LINE_NAMES
    from asyncflow._spec._resolve import parameters_of

    parser = _build(CommandWordsFlow)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    options = {
        option[2:]
        for command in ("run", "resume")
        for action in sub.choices[command]._actions
        for option in action.option_strings
        if option.startswith("--") and option[2:].isidentifier()
    }
    # --with is a keyword: no parameter can be named so (a Python identifier is required).
    options = {o for o in options if not keyword.iskeyword(o)}
    # --config NAME FILE yields to a Parameter named config (its configs then go before the
    # command): tests/test_config.py::test_a_parameter_named_config_keeps_run_config.
    assert options - {"epochs", "config"} == COMMAND_LINE_NAMES  # the rule knows every option
    for taken in sorted(COMMAND_LINE_NAMES):
        flow = type("Clash", (CommandWordsFlow,), {"extra": bf.Parameter(taken, default=1)})
        with pytest.raises(FlowValidationError, match=f"whose option --{taken} the flow"):
            parameters_of(flow)
    proc = script(FLOWS_FILE, "ClashFlow", "run", "--store", str(tmp_path / "s.db"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "Parameter 'store' at ClashFlow.where has name 'store'" in proc.stderr


# --- a huge name echoed in an error ------------------------------------------------------------

HUGE = "n" * 10_000_000


@pytest.mark.anyio
async def test_an_error_naming_a_huge_name_shows_its_start_and_length(tmp_path: Path) -> None:
    from asyncflow import Run, Step, Task
    from tests.flows.config_flows import SettingsFlow

    store = str(tmp_path / "h.db")
    await SettingsFlow(store=store, echo=False).run()

    def flow() -> SettingsFlow:
        return SettingsFlow(store=store, echo=False)

    async def raised(make: Any) -> BaseException:
        try:
            result = make()
            if inspect.isawaitable(result):
                await result
        except AsyncflowError as exc:
            return exc
        raise AssertionError("nothing was raised")

    attempts = {
        "config": lambda: SettingsFlow(store=store, echo=False, config={HUGE: {}}).run(),
        "parameter": lambda: flow().run(**{HUGE: 1}),
        "spin step": lambda: flow().spin(HUGE, run_id=1),
        "spin task": lambda: flow().spin("end", run_id=1, task=HUGE),
        "spin run": lambda: flow().spin("end", run_id=HUGE),
        "resume step": lambda: flow().resume(1, step=HUGE),
        "resume run": lambda: flow().resume(HUGE),
        "Flow": lambda: Flow(HUGE, store),
        "Run": lambda: Run(f"SettingsFlow/{HUGE}", store),
        "Step": lambda: Step(f"SettingsFlow/1/{HUGE}", store),
        "Task": lambda: Task(f"SettingsFlow/1/end/{HUGE}", store),
        "artifact": lambda: Flow("SettingsFlow", store)["1"].end_task[HUGE],
    }
    for what, make in attempts.items():
        message = str(await raised(make))
        assert len(message) < 1_000, (what, len(message))
        assert "'nnnnnnnnnn" in message and "10,000,000 characters" in message, (what, message)
