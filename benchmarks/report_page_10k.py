"""The report page of a 10,000-task foreach in headless Chromium: how long it takes to open,
and how quickly it answers the mouse.

    python benchmarks/report_page_10k.py [--repeat N] [--quick] [--n N]

One run of ``benchmarks/report_10k.py``'s flow (a foreach over N items) is stored and its
report written once, then opened ``--repeat`` times in a fresh page of one headless Chromium
(driven over the DevTools protocol, ``tests/_cdp.py``), measuring in the page:

* open: from the file's bytes received to the load event (parsing the page and its model,
  drawing the header, graph, timeline and every step's first page of tasks);
* a hover over the timeline (finding the task under the mouse, 1,000 moves, per move);
* a status filter chosen in the foreach's step (its section drawn again: the 50 tasks the
  report details, with their artifacts and output).

Baseline: the same figures for the report of a 100-task run of the same flow.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from _common import Report, parse_args, progress, scratch_dir, touch_memory
from report_10k import ReportBench

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from asyncflow.report import write_report
from tests._cdp import Browser

TARGET_OPEN_S = 2.0  # ours: a report should open about as fast as a web page

HOVER = """(() => {
  const c = document.querySelector('canvas.gantt'), r = c.getBoundingClientRect();
  const t0 = performance.now();
  for (let k = 0; k < 1000; k++) {
    c.dispatchEvent(new MouseEvent('mousemove', {clientX: r.left + 170 + (k * 7) % (r.width - 180),
      clientY: r.top + 20 + (k * 3) % (r.height - 20), bubbles: true}));
  }
  return (performance.now() - t0) / 1000;
})()"""
FILTER = """(() => {
  const s = document.querySelector('#step-1 select');
  const t0 = performance.now();
  s.value = 'succeeded';
  s.dispatchEvent(new Event('change'));
  return performance.now() - t0;
})()"""
OPEN = """(() => {
  const n = performance.getEntriesByType('navigation')[0];
  return n.loadEventEnd - n.responseEnd;
})()"""


def measure(browser: Browser, page: Path, repeat: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"open": [], "hover": [], "filter": []}
    for _ in range(repeat):
        browser.open(page.as_uri())
        assert browser.js("document.getElementById('app').dataset.errors") == "0"
        out["open"].append(browser.js(OPEN) / 1000)
        out["hover"].append(browser.js(HOVER) / 1000)
        out["filter"].append(browser.js(FILTER) / 1000)
    return out


def main() -> None:
    def extra(parser: Any) -> None:
        parser.add_argument("--n", type=int, default=10_000, help="foreach size (10,000)")

    args = parse_args(__doc__.splitlines()[0], repeat=5, extra=extra)
    n = 1000 if args.quick else args.n
    touch_memory()
    report = Report(f"report page of a {n:,}-task foreach, in Chromium", args)
    with scratch_dir(args.dir, "report-page-") as folder:
        pages = {}
        for size in (n, 100):
            store = os.path.join(folder, f"runs-{size}.db")
            progress(f"running a {size:,}-task foreach ...")
            run = asyncio.run(ReportBench(store=store, echo=False).run(n=size))
            pages[size] = Path(folder, f"report-{size}.html")
            write_report(f"ReportBench/{run.id}", str(pages[size]), store=store)
        with Browser(width=1200, height=900) as browser:
            big = measure(browser, pages[n], args.repeat)
            small = measure(browser, pages[100], args.repeat)
        size_mb = pages[n].stat().st_size / 1e6
    label = "the same for a 100-task run"
    report.add(f"open the page ({size_mb:.2f} MB)", big["open"], "s", baseline=label,
               baseline_samples=small["open"], target=TARGET_OPEN_S)  # fmt: skip
    report.add("hover over the timeline, per mouse move", [s * 1000 for s in big["hover"]], "ms",
               baseline=label, baseline_samples=[s * 1000 for s in small["hover"]])  # fmt: skip
    report.add("filter the foreach's tasks (its step drawn again)",
               [s * 1000 for s in big["filter"]], "ms",
               baseline=label, baseline_samples=[s * 1000 for s in small["filter"]])  # fmt: skip
    report.print()


if __name__ == "__main__":
    main()
