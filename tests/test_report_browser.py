"""The report page in real headless Chromium (``tests/_browser.py``): the DOM after the
page's scripts ran shows the run (steps, parameters, cards, errors, previews), nothing is
logged to the console, hostile text from an archive shows as text and runs nothing, the CSP
stops a script that got in anyway, and a live page follows a running run. Clicks and the
mouse: tests/test_report_clicks.py."""

from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asyncflow import Flow, export_runs
from asyncflow._report._page import render_page
from tests import _browser as browser
from tests._reportmodel import T0, demo_model
from tests._storefixture import T, write_run

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("needs_chromium")


@pytest.fixture
def needs_chromium() -> None:
    browser.chromium()


def open_page(tmp_path: Path, page: str, name: str = "report.html") -> browser.Page:
    path = tmp_path / name
    path.write_text(page, encoding="utf-8")
    return browser.dump_dom(browser.file_url(path))


def assert_clean(page: browser.Page) -> None:
    """Drawn once, with no error and nothing on the console."""
    assert page.app.attrs.get("data-ready") == "1", page.html[-3000:]
    assert page.app.attrs.get("data-errors") == "0"
    assert "data-csp-violations" not in page.app.attrs
    assert page.console == [], page.console


def step_sections(page: browser.Page) -> dict[str, browser.Element]:
    return {s.find(cls="step-name").text(): s for s in page.app.find_all("section", "step")}


def test_every_part_of_a_model_is_drawn(tmp_path: Path) -> None:
    model = demo_model()
    page = open_page(tmp_path, render_page(model))
    assert_clean(page)
    app = page.app
    text = app.text()
    # header: flow, run, status, parameters, source, tags, the run's error
    assert app.find(cls="flow").text() == "DemoFlow" and app.find(cls="run-id").text() == "7"
    assert app.find("header", "run").find(cls="badge").attrs["class"] == "badge status-failed"
    params = app.find(cls="params")
    assert params.find("th").text() == "alpha" and params.find("pre").text() == "0.5"
    assert "archive demo.afar" in text and "nightly" in text
    assert re.fullmatch(r"your local time, UTC[+-]\d\d:\d\d", app.find(cls="zone").text())
    assert app.find(cls="run-error").text() == "error step work failed: ValueError: item 2 is bad"
    assert app.find(cls="failed-tasks").text() == "1 failed task: work/12"
    # every step: a node of the graph and a section
    names = [s["name"] for s in model["steps"]]
    assert list(step_sections(page)) == names
    nodes = app.find("svg", "graph").find_all("g", "node")
    assert [
        n.find("text", "name").text() for n in sorted(nodes, key=lambda n: n.attrs["data-step"])
    ] == names
    work = next(n for n in nodes if n.find("text", "name").text() == "work")
    assert work.find("text", "counts").text() == "8 tasks · 1 failed"
    assert "state-failed" in work.attrs["class"]
    # the switch's edges carry their case values; the loop low -> pick is a back edge
    labels = [g.text() for g in app.find_all("g", "case")]
    assert sorted(labels) == ["big", "small"]
    assert len(app.find_all("path", "back")) == 1
    assert [g.text() for g in app.find_all("g", "note")] == ["for each items"]
    # the timeline holds every task, failed and retried ones counted
    gantt = app.find("canvas", "gantt")
    assert gantt.attrs["data-tasks"] == str(len(model["timeline"]))
    assert (gantt.attrs["data-failed"], gantt.attrs["data-retried"]) == ("1", "1")
    # a task: its numpy preview, its logs; the failed one: its error, traceback, attempts
    sections = step_sections(page)
    tasks = sections["work"].find_all("details", "task")
    assert len(tasks) == 3
    array = tasks[0].find(cls="array")
    assert (
        array.find(cls="shape").text() == "(3, 4)" and array.find(cls="dtype").text() == "float64"
    )
    assert (array.find(cls="min").text(), array.find(cls="max").text()) == ("0.0", "11.0")
    assert array.find("pre", "slice").text().startswith("[[0. 1. 2. 3.]")
    assert tasks[0].find("pre", "log-stdout").text() == "working on item 0\n"
    failed = tasks[2]
    assert "open" in failed.attrs  # a failed task is shown open
    assert failed.find("pre", "exception-text").text() == "ValueError: item 2 is bad"
    assert "Traceback (most recent call last)" in failed.find("details", "traceback").text()
    assert [li.text() for li in failed.find("ul", "attempts").find_all("li")] == [
        "attempt 0: failed after 200 ms",
        "attempt 1: failed after 200 ms",
    ]
    assert sections["start"].find("p", "doc").text() == "Begin."  # the step's docstring
    omitted = sections["work"].find("p", "omitted").text()
    assert "5 more tasks" in omitted and "asyncflow show DemoFlow/7/work/TASK_ID" in omitted
    # the card: markdown, table, images (as data: <img>), artifact preview, error component
    card = sections["start"].find("section", "card")
    assert card.find("h3").text() == "Scores heading"
    assert card.find("em").text() == "emphasis" and card.find("code").text() == "code"
    links = card.find_all("a")
    assert [(a.text(), a.attrs["href"]) for a in links] == [
        ("safe link", "https://example.org/x"),
        ("wiki", "https://en.wikipedia.org/wiki/Python_(language)"),  # parentheses kept
    ]
    nolinks = [span.text() for span in card.find_all("span", "md-nolink")]
    assert nolinks == ["bad link", "[image: a logo]"]  # an image by URL is never fetched
    assert ") link" not in card.text() and "!" not in card.text()
    assert [li.text() for li in card.find_all("li")] == ["first item", "second item"]
    assert [td.text() for td in card.find("table", "data").find_all("td")] == ["0.91", "0.88"]
    images = card.find_all("img")
    assert [i.attrs["src"][:26] for i in images] == [
        "data:image/png;base64,iVBO",
        "data:image/svg+xml;base64,",
    ]
    assert card.find("figcaption").text() == "a red square"
    assert card.find(cls="card-artifact").find(cls="name").text() == "frame"
    assert "showing 1 of 40 rows" in card.find(cls="card-artifact").text()
    assert [e.text() for e in card.find_all(cls="card-error")] == [
        "card error: Image(...) bytes are not PNG, JPEG, GIF or SVG",
        'image not shown: its type "text/html" is not PNG, JPEG, GIF or SVG, or its data is '
        "not base64",
    ]
    unavailable = sections["start"].find(cls="unavailable")
    assert unavailable.text() == "an untrusted pickle: not loaded"
    # the SVG image was drawn as an <img>: its script did not run
    assert page.title() == "DemoFlow/7 · asyncflow report"


def run_python(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ASYNCFLOW_STORE"}
    return subprocess.run(
        [sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )


def asyncflow_cli(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return run_python(cwd, "-m", "asyncflow", *argv)


def test_the_report_of_a_real_run(tmp_path: Path) -> None:
    """examples/report_demo.py, run and reported from the shell, as the README says."""
    store = str(tmp_path / "runs.db")
    proc = run_python(tmp_path, str(ROOT / "examples" / "report_demo.py"), "run", "--store", store)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "report.html"
    proc = asyncflow_cli(tmp_path, "report", "ReportDemoFlow", "-o", str(out), "--store", store)
    assert proc.returncode == 0, proc.stderr
    page = browser.dump_dom(browser.file_url(out))
    assert_clean(page)
    app = page.app
    assert app.find(cls="flow").text() == "ReportDemoFlow"
    assert app.find("header", "run").find(cls="badge").text() == "succeeded"
    params = app.find(cls="params")
    assert params.find("th").text() == "scale" and params.find("pre").text() == "1.5"
    sections = step_sections(page)
    assert list(sections) == ["start", "score", "compare", "end"]
    score = sections["score"].find_all("details", "task")
    assert len(score) == 4
    # alpha: a numpy artifact, previewed
    weights = next(r for r in score[0].find_all("tr") if r.find("th").text() == "weights")
    assert weights.find(cls="shape").text() == "(3, 4)"
    assert weights.find(cls="dtype").text() == "float64"
    assert weights.find(cls="max").text() == "16.5"
    # beta: retried; delta: failed, caught, its error shown
    assert "2 attempts" in score[1].find("summary").text()
    delta = score[3]
    assert delta.find(cls="badge").text() == "caught" and "open" in delta.attrs
    assert "model delta has no weights: train it first" in delta.text()
    # the cards, made in the steps
    assert sections["start"].find("section", "card").find("h3").text() == "Plan"
    compare = sections["compare"].find("section", "card")
    assert compare.find("em").text() == "gamma"
    assert [td.text() for td in compare.find("table", "data").find_all("td")][:2] == [
        "gamma",
        "0.8",
    ]
    assert compare.find("img").attrs["src"].startswith("data:image/svg+xml;base64,")
    gantt = app.find("canvas", "gantt")
    assert gantt.attrs["data-tasks"] == "7" and gantt.attrs["data-retried"] == "2"
    shot = browser.screenshot(browser.file_url(out), tmp_path / "report.png")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


HOSTILE = (
    "</script><script>document.title='PWNED'</script>"
    "<img src=x onerror=\"document.body.setAttribute('data-pwned','1')\">"
    '<b id="pwned">bold</b>\u2028'
)


def test_an_archive_with_hostile_text_runs_nothing(tmp_path: Path) -> None:
    """An archive whose artifact names, values, logs, error, tags and parameter carry script
    shows all of it as text, and nothing runs."""
    store = str(tmp_path / "hostile.db")
    write_run(
        store,
        "HostileFlow",
        [
            T("start", artifacts={HOSTILE: HOSTILE, "plain": HOSTILE}, stdout=HOSTILE),
            T("end", status="failed", exception=HOSTILE, traceback=HOSTILE, stderr=HOSTILE),
        ],
        status="failed",
        tags=[HOSTILE],
        params={"alpha": HOSTILE},
        error=HOSTILE,
        trusted=False,
    )
    archive = tmp_path / "hostile.afar"
    with Flow("HostileFlow", store=store) as flow:
        export_runs(archive, [flow["1"]])
    out = tmp_path / "hostile.html"
    proc = asyncflow_cli(
        tmp_path, "report", "HostileFlow/1", "--archive", str(archive), "-o", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    page = browser.dump_dom(browser.file_url(out))
    assert_clean(page)
    assert page.title() == "HostileFlow/1 · asyncflow report"
    # nothing ran: no attribute set, no element made, no title changed
    assert "data-pwned" not in page.dom.find("body").attrs
    assert page.dom.by_id("pwned") is None
    assert page.dom.find_all("b") == []
    # ... and the text is all there, as text
    app = page.app
    names = [th.text() for th in step_sections(page)["start"].find_all("th", "name")]
    assert HOSTILE in names
    assert app.text().count(HOSTILE) >= 6
    assert HOSTILE in app.find(cls="run-error").text()
    assert HOSTILE in [t.text() for t in app.find_all("span", "tag")]


def test_a_lone_surrogate_is_drawn_as_its_escape(tmp_path: Path) -> None:
    # Found by an attacker: a value holding "\ud800" made Chromium's --dump-dom crash.
    page = open_page(tmp_path, render_page(demo_model("\ud800")))
    assert_clean(page)
    assert page.app.find(cls="flow").text() == "DemoFlow\\ud800"


def test_the_csp_stops_a_script_that_got_in(tmp_path: Path) -> None:
    """Were an escape ever missed, the page's policy would still run nothing but the page's
    own script: a script element and an event handler planted in the HTML do not run."""
    page_text = render_page(demo_model())
    planted = (
        "<script>document.body.setAttribute('data-pwned','1')</script>"
        "<img src=x onerror=\"document.body.setAttribute('data-pwned','2')\">"
        '<img src="https://example.org/x.png">'
    )
    page = open_page(tmp_path, page_text.replace("</body>", planted + "</body>"))
    assert page.app.attrs.get("data-ready") == "1"  # the page's own script did run
    assert "data-pwned" not in page.dom.find("body").attrs
    assert int(page.app.attrs.get("data-csp-violations", "0")) >= 2
    assert any("Content Security Policy" in line for line in page.console), page.console


class _Server(http.server.ThreadingHTTPServer):
    pages: dict[str, bytes]
    models: list[dict[str, Any] | None]
    hits: list[str]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.hits.append(self.path)
        if self.path == "/model":
            models = self.server.models
            model = models.pop(0) if len(models) > 1 else models[0]
            if model is None:  # the server failing once
                self.send_error(503)
                return
            body, kind = json.dumps(model).encode(), "application/json"
        elif self.path in self.server.pages:
            body, kind = self.server.pages[self.path], "text/html; charset=utf-8"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.pages, srv.models, srv.hits = {}, [], []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join()


def running(model: dict[str, Any], n_done: int) -> dict[str, Any]:
    """``model`` as it was while running: only the first ``n_done`` work tasks."""
    m = json.loads(json.dumps(model))
    m["run"].update(status="running", finished_at=None, error=None)
    work = m["steps"][2]
    work["tasks"] = work["tasks"][:n_done]
    work.update(n_tasks=n_done, n_failed=0, n_running=1, omitted=0)
    m["timeline"] = [
        r for r in m["timeline"] if r[0] != 2 or r[1] in {t["id"] for t in work["tasks"]}
    ]
    # and one task still running: no end yet
    going = dict(work["tasks"][-1], id="999", status="running", finished_at=None, stdout="so far")
    going["attempts"] = [
        {"n": 0, "started_at": going["started_at"], "finished_at": None, "ok": False}
    ]
    work["tasks"].append(going)
    work["n_tasks"] += 1
    m["timeline"].append([2, "999", going["started_at"], None, "running", 0])
    return m


def test_a_live_page_follows_its_run_and_keeps_what_is_open(
    tmp_path: Path, server: _Server
) -> None:
    final = demo_model(n_items=60)
    first = running(final, 55)
    server.models = [running(final, 57), final]
    server.pages["/run"] = render_page(first, live={"url": "/model", "interval_ms": 200}).encode()
    port = server.server_address[1]
    # Open on task 63 of work (page 2 of its tasks), as a shared link would.
    page = browser.dump_dom(f"http://127.0.0.1:{port}/run#task=work/63", budget_ms=8000)
    assert page.console == [], page.console
    app = page.app
    assert app.attrs.get("data-errors") == "0"
    assert int(app.attrs["data-ready"]) >= 3  # drawn, then re-drawn twice
    assert server.hits.count("/model") == 2  # and no fetch once the run had ended
    assert app.find("header", "run").find(cls="badge").text() == "failed"
    assert app.by_id("live-state").text() == "final"
    work = step_sections(page)["work"]
    assert work.find(cls="counts").text().startswith("65 tasks · 1 failed")
    assert "page 2 of 2" in work.find(cls="pager").text()
    shown = {d.attrs["data-task"]: "open" in d.attrs for d in work.find_all("details", "task")}
    assert shown["2/63"] is True  # still open after the re-draws
    assert shown["2/69"] is True  # the failed one, open by itself
    assert "2/10" not in shown  # page 1's


def test_a_live_page_rides_out_a_server_error(tmp_path: Path, server: _Server) -> None:
    """A failed fetch says so on the page and is tried again; a link to a task that is cut
    short opens nothing and breaks nothing."""
    final = demo_model()
    server.models = [None, final]
    server.pages["/run"] = render_page(
        running(final, 2), live={"url": "/model", "interval_ms": 200}
    ).encode()
    page = browser.dump_dom(
        f"http://127.0.0.1:{server.server_address[1]}/run#task=work/%E0%A4%A", budget_ms=8000
    )
    app = page.app
    assert app.attrs.get("data-errors") == "0"
    assert server.hits.count("/model") == 2
    assert app.by_id("live-state").text() == "final"  # type: ignore[union-attr]
    assert app.find("header", "run").find(cls="badge").text() == "failed"


def test_a_page_that_is_not_live_fetches_nothing(tmp_path: Path, server: _Server) -> None:
    model = running(demo_model(), 1)
    server.pages["/run"] = render_page(model).encode()
    server.models = [demo_model()]
    page = browser.dump_dom(f"http://127.0.0.1:{server.server_address[1]}/run", budget_ms=3000)
    assert_clean(page)
    assert server.hits == ["/run"] or set(server.hits) <= {"/run", "/favicon.ico"}
    assert page.app.by_id("live-state") is None


def test_ten_thousand_tasks(tmp_path: Path) -> None:
    """A 10,000-task foreach: the timeline draws every task, the step shows its tasks a page
    at a time, the rest counted."""
    model = demo_model()
    work = model["steps"][2]
    rows = [[2, str(1000 + k), T0 + 2 + k * 0.01, T0 + 2.5 + k * 0.01,
             "failed" if k % 997 == 0 else "succeeded", k % 2] for k in range(10_000)]  # fmt: skip
    model["timeline"] = [r for r in model["timeline"] if r[0] != 2] + rows
    base = work["tasks"][0]
    work["tasks"] = [dict(base, id=str(1000 + k), index=k) for k in range(120)]
    work.update(n_tasks=10_000, n_failed=11, omitted=10_000 - 120)
    page = open_page(tmp_path, render_page(model))
    assert_clean(page)
    gantt = page.app.find("canvas", "gantt")
    assert gantt.attrs["data-tasks"] == str(len(model["timeline"]))
    assert gantt.attrs["data-failed"] == "11"
    section = step_sections(page)["work"]
    assert len(section.find_all("details", "task")) == 50
    assert "page 1 of 3" in section.find(cls="pager").text()
    assert (
        "9,880" in section.find(cls="omitted").text()
        or "9880" in section.find(cls="omitted").text()
    )


def test_times_are_shown_in_the_viewers_time_zone(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    path.write_text(render_page(demo_model()), encoding="utf-8")  # run started at T0
    for tz, zone, started in [
        ("UTC", "UTC+00:00", "2025-10-09 08:53:20"),
        ("Asia/Kolkata", "UTC+05:30", "2025-10-09 14:23:20"),
        ("America/New_York", "UTC-04:00", "2025-10-09 04:53:20"),
    ]:
        page = browser.dump_dom(browser.file_url(path), tz=tz)
        facts = page.app.find("dl", "facts").find_all("dd")
        assert facts[0].text() == started, tz
        assert page.app.find(cls="zone").text() == f"your local time, {zone}"


def test_the_graph_is_layered_by_depth_and_draws_each_kind_of_step(tmp_path: Path) -> None:
    """start splits into a and b (b is two steps long), they meet in join: each step a layer
    below its parents (a join below all of them), a split, a foreach, a switch and a join
    each drawn their own way."""
    model = demo_model()
    names = ["start", "a", "b", "b2", "join", "end"]
    edges = {"start": ["a", "b"], "a": ["join"], "b": ["b2"], "b2": ["join"], "join": ["end"]}
    model["graph"]["steps"] = [
        {"name": n, "kind": "split" if n == "start" else ("end" if n == "end" else "linear"),
         "out": edges.get(n, []), "in": [p for p, o in edges.items() if n in o],
         "foreach_var": None, "condition": None, "cases": None, "doc": None}
        for n in names
    ]  # fmt: skip
    model["graph"]["end"] = "end"
    model["steps"] = [dict(model["steps"][0], name=n, tasks=[], n_tasks=0) for n in names]
    model["timeline"] = []
    page = open_page(tmp_path, render_page(model))
    assert_clean(page)
    nodes = {
        n.find("text", "name").text(): n
        for n in page.app.find("svg", "graph").find_all("g", "node")
    }
    y = {name: float(node.find(cls="box").attrs["y"]) for name, node in nodes.items()}
    assert y["start"] < y["a"] == y["b"] < y["b2"] < y["join"] < y["end"]
    assert "kind-split" in nodes["start"].attrs["class"]
    assert "join" in nodes["join"].attrs["class"].split()
    assert len(page.app.find_all("path", "edge")) == 6 and not page.app.find_all("path", "back")
    # the demo's own graph: a foreach, a switch (a hexagon) and a join
    page = open_page(tmp_path, render_page(demo_model()), "demo.html")
    kinds = {
        n.find("text", "name").text(): n
        for n in page.app.find("svg", "graph").find_all("g", "node")
    }
    assert "kind-foreach" in kinds["fan"].attrs["class"]
    assert "kind-switch" in kinds["pick"].attrs["class"] and kinds["pick"].find("polygon", "box")
    assert "join" in kinds["join"].attrs["class"].split()
    assert len(page.app.find_all("path", "foreach")) == 1
