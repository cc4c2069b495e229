"""The report page in real headless Chromium, clicked: the graph, the timeline, the pager,
the status filter and a link to a task, driven over the DevTools protocol (``tests/_cdp.py``);
and the page's error count, which the other browser tests read, does count."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asyncflow._report._page import render_page
from tests import _browser as browser
from tests._cdp import Browser
from tests._reportmodel import demo_model

pytestmark = pytest.mark.usefixtures("needs_chromium")


@pytest.fixture
def needs_chromium() -> None:
    browser.chromium()


OPEN_TASKS = "[...document.querySelectorAll('details.task[open]')].map(d => d.dataset.task)"
TIP = "(t => t.hidden ? '' : t.textContent)(document.querySelector('.tip'))"
# In each row of the timeline's pixels, the rightmost one of a succeeded bar (viewport x, y).
GREEN_BARS = """(() => {
  const c = document.querySelector('canvas.gantt'), r = c.getBoundingClientRect();
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data, out = [];
  for (let y = 0; y < c.height; y += 2) for (let x = c.width - 1; x >= 0; x -= 3) {
    const i = 4 * (y * c.width + x);
    if (d[i] === 46 && d[i + 1] === 158 && d[i + 2] === 107) {
      out.push([r.left + x + 0.5, r.top + y + 0.5]);
      break;
    }
  }
  return out;
})()"""


def center(b: Browser, selector: str) -> tuple[float, float]:
    """Scroll the element into view; its centre in viewport coordinates."""
    box = b.js(
        f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
        " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
        " return [r.left + r.width / 2, r.top + r.height / 2]; })()"
    )
    return box[0], box[1]


def test_clicking_the_graph_the_timeline_the_filter_and_the_pages(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    path.write_text(render_page(demo_model(n_items=60)), encoding="utf-8")
    with Browser(width=1200, height=800) as b:
        b.open(browser.file_url(path))
        # the header's button to the failed task: its page, the task at the top of the window
        assert "page 1 of 2" in b.js("document.querySelector('#step-2 .pager span').textContent")
        b.click(*center(b, "button.to-task"))
        assert "page 2 of 2" in b.js("document.querySelector('#step-2 .pager span').textContent")
        top = b.js(
            "document.querySelector('details[data-task=\"2/69\"]').getBoundingClientRect().top"
        )
        assert -5 < top < 20
        # a node of the graph: its step's section comes to the top of the window
        x, y = center(b, "g.node[data-step='2']")  # "work", below the start's card
        b.click(x, y)
        top = b.js("document.getElementById('step-2').getBoundingClientRect().top")
        assert abs(top) < 20 and b.js("window.scrollY") > 500
        # a bar of the timeline: hovering names its task, clicking opens it (on its page)
        b.js("document.querySelector('canvas.gantt').scrollIntoView({block: 'center'})")
        green = b.js(GREEN_BARS)
        assert green, "no succeeded bar drawn"
        tip = ""
        for x, y in green:  # the last rows first: the work tasks furthest right
            b.mouse("moved", x, y)
            tip = b.js(TIP)
            if tip.startswith("work/") and int(tip.split("/")[1].split(" ")[0]) >= 60:
                break
        assert tip.startswith("work/") and "succeeded" in tip, tip
        task = tip.split("/")[1].split(" ")[0]
        assert f"2/{task}" not in b.js(OPEN_TASKS)
        b.click(x, y)
        assert f"2/{task}" in b.js(OPEN_TASKS)
        assert "page 2 of 2" in b.js("document.querySelector('#step-2 .pager span').textContent")
        top = b.js(
            f"document.querySelector('details[data-task=\"2/{task}\"]').getBoundingClientRect().top"
        )
        assert -5 < top < 800
        # the pager and the status filter
        b.click(*center(b, "#step-2 .pager button"))  # "previous"
        assert "page 1 of 2" in b.js("document.querySelector('#step-2 .pager span').textContent")
        assert b.js("document.querySelectorAll('#step-2 details.task').length") == 50
        b.js(
            "(() => { const s = document.querySelector('#step-2 select'); s.value = 'failed';"
            " s.dispatchEvent(new Event('change')); })()"
        )
        shown = b.js(
            "[...document.querySelectorAll('#step-2 details.task')].map(d => d.dataset.task)"
        )
        assert shown == ["2/69"]
        assert b.js("document.querySelector('#step-2 .pager')") is None
        # a link to a task opens it
        b.js("location.hash = '#task=work/15'")
        b.js("new Promise(r => setTimeout(r, 50))")
        assert "2/15" in b.js(OPEN_TASKS)
        # ... and to a task the report counts but does not detail, says how to see it
        b.js("location.hash = '#task=work/101'")
        b.js("new Promise(r => setTimeout(r, 50))")
        note = b.js("document.querySelector('#step-2 .note').textContent")
        assert note == (
            "task 101 is not detailed in this report: see it with "
            "asyncflow show DemoFlow/7/work/101"
        )
        assert b.js("document.getElementById('app').dataset.errors") == "0"
        assert b.console() == []


def test_the_page_counts_its_errors(tmp_path: Path) -> None:
    """The error count the other tests read (``data-errors="0"``) does count: a console
    error, an uncaught exception and a rejected promise each add one."""
    path = tmp_path / "report.html"
    path.write_text(render_page(demo_model()), encoding="utf-8")
    with Browser() as b:
        b.open(browser.file_url(path))
        assert b.js("document.getElementById('app').dataset.errors") == "0"
        b.js("console.error('one')")
        b.js("setTimeout(() => { throw new Error('two'); }, 0)")
        b.js("Promise.reject(new Error('three')); 0")
        b.js("new Promise(r => setTimeout(r, 100))")
        assert b.js("document.getElementById('app').dataset.errors") == "3"
