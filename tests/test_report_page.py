"""The report page's HTML text, without a browser: self-contained, its CSP allows exactly its
own script, and hostile strings from a store stay inside the embedded JSON."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from pathlib import Path
from typing import Any

import pytest

from asyncflow._report._page import SCRIPT_FILES, embed_json, render_page
from tests._reportmodel import demo_model

HOSTILE = (
    "</script><script>document.title='PWNED'</script>"
    "<img src=x onerror=\"document.body.setAttribute('data-pwned','1')\">"
    '<!-- \u2028\u2029 &amp; <b id="pwned">bold</b>'
)
_SCRIPTS = re.compile(r"<script(?P<attrs>[^>]*)>(?P<body>.*?)</script>", re.S)


def scripts(page: str) -> list[tuple[str, str]]:
    """(attributes, body) of each <script> element of ``page``."""
    return [(m.group("attrs"), m.group("body")) for m in _SCRIPTS.finditer(page)]


def csp(page: str) -> dict[str, list[str]]:
    found = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', page)
    assert found is not None
    policy = html.unescape(found.group(1))
    return {d.split()[0]: d.split()[1:] for d in policy.split(";") if d.strip()}


def data_block(page: str, ident: str) -> Any:
    for attrs, body in scripts(page):
        if f'id="{ident}"' in attrs:
            assert 'type="application/json"' in attrs
            return json.loads(body)
    raise AssertionError(f"no data block {ident}")


def test_the_page_fetches_nothing_and_needs_nothing_else() -> None:
    page = render_page(demo_model())
    assert not re.search(r"""\b(src|href|action)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert not re.search(r"<link\b|<iframe\b|<object\b|<embed\b", page, re.I)
    style = page[page.index("<style>") : page.index("</style>")]
    assert "@import" not in style and "url(" not in style
    # One renderer script (all of the asset files), two data blocks, nothing from elsewhere.
    found = scripts(page)
    assert [a for a, _ in found] == [
        ' type="application/json" id="model"',
        ' type="application/json" id="live"',
        "",
    ]
    assert found[2][1].count("(function () {") >= len(SCRIPT_FILES) - 1  # every asset file
    assert data_block(page, "live") is None
    assert "connect-src" not in csp(page)


def test_the_csp_allows_exactly_the_pages_own_script() -> None:
    page = render_page(demo_model())
    policy = csp(page)
    body = scripts(page)[-1][1]
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    assert policy["script-src"] == [f"'sha256-{digest}'"]
    assert policy["default-src"] == ["'none'"]
    assert policy["img-src"] == ["data:"]
    assert policy["style-src"] == ["'unsafe-inline'"]
    assert policy["base-uri"] == ["'none'"]
    # The policy comes before anything a browser could load or run.
    assert page.index("Content-Security-Policy") < page.index("<script")


def test_a_live_page_may_fetch_from_its_own_server_only() -> None:
    page = render_page(demo_model(), live={"url": "/api/runs/DemoFlow/7", "interval_ms": 500})
    assert csp(page)["connect-src"] == ["'self'"]
    assert data_block(page, "live") == {"url": "/api/runs/DemoFlow/7", "interval_ms": 500}


def test_hostile_strings_stay_inside_the_json() -> None:
    model = demo_model(HOSTILE)
    page = render_page(model)
    # Every script element is ours: the hostile text opened and closed none.
    assert len(scripts(page)) == 3
    assert page.count("<script") == 3 and page.count("</script") == 3
    after_title = page[page.index("</title>") :]
    for raw in ("<img", "<b id", "<!--", "\u2028", "\u2029", "&amp;"):
        assert raw not in after_title, raw
    assert "\u2028" not in page and "<b id" not in page
    # ... and the data reads back exactly as the model was.
    assert data_block(page, "model") == model
    # The title is made in Python: escaped there.
    title = re.search(r"<title>(.*?)</title>", page, re.S)
    assert title is not None and "<" not in title.group(1)
    assert html.unescape(title.group(1)).startswith("DemoFlow" + HOSTILE + "/7")


def test_embed_json_escapes_what_could_end_a_script_block() -> None:
    text = embed_json({"a": "</script>&<!--\u2028\u2029"})
    assert text == '{"a":"\\u003c/script\\u003e\\u0026\\u003c!--\\u2028\\u2029"}'
    assert json.loads(text) == {"a": "</script>&<!--\u2028\u2029"}


def test_numbers_json_cannot_hold_become_null() -> None:
    assert json.loads(embed_json({"t": [float("nan"), float("inf"), 1.5]})) == {
        "t": [None, None, 1.5]
    }


def test_a_lone_surrogate_from_a_store_does_not_stop_the_page() -> None:
    # Shown as the text of its escape, as the store keeps such text: a lone surrogate in the
    # page's strings made Chromium's --dump-dom die with SIGILL (found by an attacker; the
    # browser side is tests/test_report_browser.py).
    model = demo_model("\ud800")
    page = render_page(model)
    page.encode("utf-8")  # writable as a file
    assert data_block(page, "model")["run"]["flow"] == "DemoFlow\\ud800"


def test_the_renderer_never_writes_html_text() -> None:
    """The renderer builds nodes: no innerHTML, outerHTML, insertAdjacentHTML,
    document.write or eval anywhere in its source."""
    page = render_page(demo_model())
    body = scripts(page)[-1][1]
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                 "new Function", "srcdoc", "createContextualFragment"):  # fmt: skip
        assert sink not in body, sink


def test_browser_tests_skip_without_chromium_but_fail_under_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests._browser import chromium

    monkeypatch.setenv("PATH", str(tmp_path))  # no chromium on it
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        chromium()
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="CI must run the browser tests"):
        chromium()
