"""The run report of a 10,000-task foreach: time to build its model and to write its page,
and the page's size.

    python benchmarks/report_10k.py [--repeat N] [--quick] [--n N]

One run of ``start -> body (foreach over N items, each setting two small artifacts and
printing a line) -> join -> end`` is stored once, then measured ``--repeat`` times (median):

* ``build_model(run)``: reading the run and building the plain-data model (every task in the
  timeline, the first 50 of each step detailed, with previews).
* ``write_report(run, path)``: the whole report as a user makes it (model, page, file).
* the page's size in bytes, and the model's as JSON.
* baselines, same process, same run: listing every task through the client (one query per
  step: the least any report must read), and a naive report's reads through the client:
  each task's output and artifact names, task by task.

Targets (issue 14): the report in at most 5 s, the file at most 5 MB.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from _common import Report, parse_args, progress, scratch_dir, timed, touch_memory

from asyncflow import Flow, FlowSpec, Parameter, step
from asyncflow._report._model import build_model
from asyncflow.report import write_report

TARGET_SECONDS = 5.0
TARGET_MB = 5.0


class ReportBench(FlowSpec):
    """start -> body (foreach over range(n)) -> join -> end."""

    n = Parameter("n", default=10_000)

    @step
    def start(self) -> None:
        self.items = list(range(int(self.n)))
        self.next(self.body, foreach="items")

    @step
    def body(self) -> None:
        self.square = self.input * self.input
        self.label = f"item {self.input}"
        print(f"working on item {self.input}")
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.total = sum(i.square for i in inputs)
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


def _list_tasks(store: str, run_id: str) -> int:
    with Flow("ReportBench", store) as flow:
        return sum(len(step) for step in flow[run_id])


def _naive(store: str, run_id: str) -> int:
    with Flow("ReportBench", store) as flow:
        count = 0
        for step_ in flow[run_id]:
            for task in step_:
                count += len(task.stdout) + len(list(task.data))
        return count


def main() -> None:
    def extra(parser: Any) -> None:
        parser.add_argument("--n", type=int, default=10_000, help="foreach size (10,000)")

    args = parse_args(__doc__.splitlines()[0], repeat=3, extra=extra)
    n = 1000 if args.quick else args.n
    touch_memory()
    report = Report(f"run report of a {n:,}-task foreach", args)
    with scratch_dir(args.dir, "report-") as folder:
        store = os.path.join(folder, "runs.db")
        progress(f"running a {n:,}-task foreach ...")
        run = asyncio.run(ReportBench(store=store, echo=False).run(n=n))
        model_s, write_s, list_s, naive_s = [], [], [], []
        size = model_size = 0
        for r in range(args.repeat):
            took, model = timed(lambda: build_model(Flow("ReportBench", store)[run.id]))
            model_s.append(took)
            model_size = len(json.dumps(model))
            out = os.path.join(folder, f"run-{r}.html")
            took, _ = timed(lambda: write_report(f"ReportBench/{run.id}", out, store=store))  # noqa: B023
            write_s.append(took)
            size = os.path.getsize(out)
            list_s.append(timed(lambda: _list_tasks(store, run.id))[0])
            progress(
                f"  repeat {r + 1}/{args.repeat}: model {model_s[-1]:.2f} s, "
                f"write {write_s[-1]:.2f} s, {size / 1e6:.2f} MB"
            )
        if not args.quick:
            naive_s.append(timed(lambda: _naive(store, run.id))[0])
    report.add(
        "build_model(run)", model_s, "s", baseline="list every task", baseline_samples=list_s
    )
    report.add(
        "write_report(run, path): model, page, file",
        write_s,
        "s",
        baseline="list every task",
        baseline_samples=list_s,
        target=TARGET_SECONDS,
    )
    report.add("report file size", [size / 1e6], "MB", target=TARGET_MB)
    report.add("model as JSON", [model_size / 1e6], "MB")
    report.add("baseline: list every task through the client", list_s, "s")
    report.add("baseline: naive reads, task by task (output, names)", naive_s, "s")
    report.print()


if __name__ == "__main__":
    main()
