"""Flows in notebooks (issue 13, item 7), run by a real Jupyter kernel through nbclient.

The kernel is this interpreter (``sys.executable``), from a kernelspec written in tmp_path:
nothing depends on kernels installed for the user or the system.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

from asyncflow import Flow

ROOT = Path(__file__).resolve().parents[1]

DEFINE = """
from asyncflow import Config, FlowSpec, Parameter, StepFailed, step

class CellFlow(FlowSpec):
    cfg = Config("cfg", default_value={"scale": 10})
    fail = Parameter("fail", default=False)

    @step
    async def start(self):
        self.items = [1, 2, 3]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        if self.fail and self.input == 2:
            raise ValueError("two is refused")
        self.out = self.input * self.cfg.scale
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.out for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass
"""

CELLS = [
    DEFINE,
    # top-level await, as a notebook user writes it
    'run = await CellFlow(store=STORE, echo=False).run()\nprint("TOTAL", run.data.total)',
    'print("DATA", run["work"].task.data.out, sorted(t.data.out for t in run["work"]))',
    "await CellFlow(store=STORE, echo=False).run(fail=True)",  # the StepFailed is shown
    'CellFlow.main(["run"])',  # the command line inside a running loop: a clear error
]


def _kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernel of this interpreter, from a kernelspec made in tmp_path (found through
    $JUPYTER_PATH, searched before the user's and the system's kernels)."""
    folder = tmp_path / "jupyter" / "kernels" / "asyncflow-test"
    folder.mkdir(parents=True)
    path = os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "asyncflow test",
        "language": "python",
        "env": {"PYTHONPATH": path},
    }
    (folder / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    assert KernelSpecManager().get_kernel_spec("asyncflow-test").argv[0] == sys.executable
    return "asyncflow-test"


def _outputs(cell: Any) -> tuple[str, list[tuple[str, str]]]:
    text = "".join(o.get("text", "") for o in cell.get("outputs", []))
    errors = [(o["ename"], o["evalue"]) for o in cell.get("outputs", []) if o.get("ename")]
    return text, errors


def test_a_flow_defined_in_a_notebook_cell_runs_with_top_level_await(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "nb.db"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"STORE = {str(store)!r}")] + [
        nbformat.v4.new_code_cell(c) for c in CELLS
    ]
    client = NotebookClient(
        nb,
        kernel_name=_kernel(tmp_path, monkeypatch),
        timeout=60,
        allow_errors=True,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    cells = [_outputs(cell) for cell in nb.cells]
    for _, errors in cells[:4]:
        assert not errors, errors
    assert "TOTAL 60" in cells[2][0]
    assert "DATA 10 [10, 20, 30]" in cells[3][0]
    failed = cells[4][1]
    assert [name for name, _ in failed] == ["StepFailed"], cells[4]
    assert "step 'work' failed in task CellFlow/2/work/" in failed[0][1]
    assert "ValueError: two is refused" in failed[0][1]
    used = cells[5][1]
    assert [name for name, _ in used] == ["UsageError"], cells[5]
    assert "CellFlow.main() runs the command line" in used[0][1]
    assert "`run = await CellFlow().run(...)`" in used[0][1]
    with Flow("CellFlow", store=str(store)) as flow:
        assert [r.status for r in flow.runs()] == ["failed", "succeeded"]
