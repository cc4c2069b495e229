"""docs/metaflow.md ("Coming from Metaflow") tells the truth about every name it lists: what it
calls same or differs imports from asyncflow (or is an attribute of ``current``, or a command
or option the flow's command line knows); what it calls not supported or not yet is refused
with NotSupportedError (Python names) or one line and exit code 2 (commands)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import asyncflow
from asyncflow import NotSupportedError
from asyncflow._runtime._current import Current
from asyncflow._spec._refused import REFUSED

PAGE = Path(__file__).parent.parent / "docs" / "metaflow.md"
STATUSES = ("same", "differs", "not supported", "not yet")
ROW = re.compile(r"^\| `([^`]+)` \| (.+) \|$")


def rows() -> list[tuple[str, str, str]]:
    found = []
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            name, text = match.groups()
            status = next((s for s in STATUSES if text.startswith(s)), None)
            assert status, f"docs/metaflow.md: the row of {name} starts with none of {STATUSES}"
            found.append((name, status, text))
    return found


ROWS_TEXT = [(n, t) for n, _, t in rows()]
ROWS = [(n, s) for n, s, _ in rows()]
PYTHON = [
    (n, s) for n, s in ROWS if not n.startswith(("python ", "current.")) and n.count(".") <= 1
]
CURRENT = [(n, s) for n, s in ROWS if n.startswith("current.")]
COMMANDS = [(n, s) for n, s in ROWS if n.startswith("python flow.py ")]


def test_the_page_lists_names_commands_and_current() -> None:
    assert len(PYTHON) > 40 and len(CURRENT) > 10 and len(COMMANDS) > 15
    assert len({n for n, _ in ROWS}) == len(ROWS), "a name is listed twice"


def importing(name: str) -> str:
    """``cards.Table`` -> ``from asyncflow.cards import Table``, as a user writes it."""
    module, _, short = name.rpartition(".")
    return f"from asyncflow{'.' + module if module else ''} import {short}"


@pytest.mark.parametrize(("name", "status"), PYTHON)
def test_each_python_name_does_what_the_page_says(name: str, status: str) -> None:
    if status in ("same", "differs"):
        assert name not in REFUSED
        exec(importing(name), {})
    elif "importable, but applying one is refused" in dict(ROWS_TEXT)[name]:
        assert getattr(asyncflow, name) is not None  # tested in tests/test_start_end.py
    else:
        with pytest.raises(NotSupportedError):
            exec(importing(name), {})
        reason = REFUSED[name]
        assert ("not built yet" in reason) == (status == "not yet"), name


def test_every_refused_name_is_on_the_page() -> None:
    listed = {n for n, s in PYTHON if s in ("not supported", "not yet")}
    assert set(REFUSED) <= listed


@pytest.mark.parametrize(("name", "status"), CURRENT)
def test_each_current_attribute_exists(name: str, status: str) -> None:
    assert isinstance(getattr(Current, name.removeprefix("current.")), property)


FLOW = """
from asyncflow import FlowSpec, step

class PageFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    PageFlow()
"""


@pytest.fixture(scope="module")
def flow_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("page") / "page_flow.py"
    path.write_text(FLOW)
    return path


def shell(flow_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, flow_file.name, *args],
        cwd=flow_file.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(("name", "status"), COMMANDS)
def test_each_command_and_option_does_what_the_page_says(
    flow_file: Path, name: str, status: str
) -> None:
    word = name.removeprefix("python flow.py ")
    if word.startswith("--"):
        helps = shell(flow_file, "--help").stdout + shell(flow_file, "run", "--help").stdout
        if status in ("same", "differs") and word not in ("--datastore", "--metadata"):
            assert word in helps, f"{word} is not an option of the flow's command line"
        else:
            out = shell(flow_file, word, "x", "run")
            assert out.returncode == 2 and "--store" in out.stderr, out.stderr
        return
    out = shell(flow_file, word, "--help")
    if status in ("same", "differs") and word != "tag":
        assert out.returncode == 0, out.stderr
    else:
        refused = shell(flow_file, word)
        assert refused.returncode == 2, refused
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in refused.stderr, refused.stderr
