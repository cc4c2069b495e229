"""A flow defined in a notebook cell runs its steps in worker processes (a real kernel)."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from asyncflow import Flow

CELLS = [
    """
import os
from asyncflow import FlowSpec, executor, step

def double(x):          # a helper defined in the notebook, used by a process step
    return 2 * x

class NotebookFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2, 3]
        self.next(self.work, foreach="items")

    @executor("process")
    @step
    def work(self):
        print("in a worker:", self.input)
        self.pid = os.getpid()
        self.out = double(self.input)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.outs = [i.out for i in inputs]
        self.pids = sorted({i.pid for i in inputs})
        self.next(self.end)

    @step
    def end(self):
        self.kernel_pid = os.getpid()
""",
    """
run = await NotebookFlow(store=STORE, echo=False).run()
print("RESULT", run.data.outs, run.data.kernel_pid in run.data.pids)
""",
]


def test_a_flow_defined_in_a_notebook_runs_process_steps(tmp_path: Path) -> None:
    store = tmp_path / "nb.db"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"STORE = {str(store)!r}")] + [
        nbformat.v4.new_code_cell(c) for c in CELLS
    ]
    client = NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    outputs = [
        o.get("text", "") for cell in nb.cells for o in cell.get("outputs", []) if "text" in o
    ]
    assert any("RESULT [2, 4, 6] False" in text for text in outputs), outputs
    run = Flow("NotebookFlow", store=str(store)).latest_run
    assert run is not None and run.successful
    kernel = run["end"].task.data.kernel_pid
    workers = {t.data.pid for t in run["work"]}
    assert kernel not in workers and os.getpid() not in workers
    assert sorted(t.stdout for t in run["work"]) == [f"in a worker: {i}\n" for i in (1, 2, 3)]
