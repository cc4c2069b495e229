"""`XFlow()` at the bottom of a flow file runs the command line, as in Metaflow; constructing
a flow any other way never reads sys.argv (README, "The command line")."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
from nbclient import NotebookClient

FLOW = """
from asyncflow import FlowSpec, step


class HelloFlow(FlowSpec):
    @step
    def start(self):
        print("hello from start")
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def script(tmp: Path, name: str, tail: str) -> Path:
    path = tmp / name
    path.write_text(FLOW + textwrap.dedent(tail))
    return path


def python(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=tmp, capture_output=True, text=True, timeout=120
    )


def test_xflow_at_the_bottom_of_a_script_runs_the_command_line(tmp_path: Path) -> None:
    path = script(tmp_path, "hello.py", 'if __name__ == "__main__":\n    HelloFlow()\n')
    out = python(tmp_path, str(path), "run", "--store", "s.db")
    assert out.returncode == 0, out.stderr
    assert "Run HelloFlow/1 succeeded" in out.stdout
    assert "hello from start" in out.stdout
    assert (tmp_path / "s.db").exists()
    show = python(tmp_path, str(path), "show")
    assert show.returncode == 0 and "start" in show.stdout


def test_xflow_without_a_command_says_what_is_missing(tmp_path: Path) -> None:
    path = script(tmp_path, "hello.py", 'if __name__ == "__main__":\n    HelloFlow()\n')
    out = python(tmp_path, str(path))
    assert out.returncode == 2  # never a silent exit 0
    assert "required: command" in out.stderr and "--help" in out.stderr


def test_a_flow_constructed_to_be_used_never_reads_sys_argv(tmp_path: Path) -> None:
    path = script(
        tmp_path,
        "embed.py",
        """
        import asyncio

        flow = HelloFlow(store="e.db")      # kept: an embedding
        bare = HelloFlow()                  # kept too


        def helper():
            HelloFlow()                     # a statement, but in a function


        async def main():
            helper()
            HelloFlow()                     # a statement, with the loop running
            run = await flow.run()
            print("embedded run", run.id)


        if __name__ == "__main__":
            HelloFlow(store="x.db")         # a statement with arguments
            asyncio.run(main())
        """,
    )
    out = python(tmp_path, str(path), "--not-an-option", "run")
    assert out.returncode == 0, out.stderr
    assert "embedded run 1" in out.stdout
    assert "error" not in out.stderr
    assert not (tmp_path / "x.db").exists()


def test_importing_a_flow_file_or_running_code_from_a_string_runs_no_command_line(
    tmp_path: Path,
) -> None:
    script(tmp_path, "hello.py", "HelloFlow()\n")  # unguarded: runs at import
    out = python(tmp_path, "-c", "import hello; print('imported')", "run")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "imported"
    code = FLOW + "\nHelloFlow()\nprint('after')\n"
    out = python(tmp_path, "-c", code, "run")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "after"


def test_a_bare_xflow_in_a_notebook_cell_runs_no_command_line(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(FLOW + "\nHelloFlow()\nprint('still here')\n")]
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    texts = [o.get("text", "") for o in nb.cells[0].outputs]
    assert any("still here" in t for t in texts), nb.cells[0].outputs
