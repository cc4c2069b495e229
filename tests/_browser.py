"""Real headless Chromium for the report page tests: the DOM after the page's scripts ran
(``--dump-dom``), a screenshot, and what the page wrote to the console.

Debian's ``chromium`` package (``.ci/run`` installs it when missing). Without it the browser
tests skip, except when the environment variable ``CI`` is set: then they fail, so CI never
passes without having run them. Each call uses a fresh profile folder, so calls may run side
by side.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

TIMEOUT = 120
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}  # fmt: skip
_CONSOLE = re.compile(r":CONSOLE[:(]")


def chromium() -> str:
    """The chromium executable; skips the test when there is none (fails under CI)."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed, and CI must run the browser tests")
    pytest.skip("chromium is not installed (apt-get install chromium)")


def _run(url: str, *flags: str, tz: str | None = None) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="af-chromium-") as profile:
        return subprocess.run(
            [
                chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-sync",
                f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
                *flags, url,
            ],
            capture_output=True, text=True, timeout=TIMEOUT, check=False,
            env=os.environ | ({"TZ": tz} if tz else {}),
        )  # fmt: skip


@dataclass
class Element:
    """One element of a dumped DOM: its tag, attributes and children (elements and text)."""

    tag: str
    attrs: dict[str, str]
    children: list[Element | str] = field(default_factory=list)

    def text(self) -> str:
        """Its text, as a reader sees it (script and style contents left out)."""
        if self.tag in ("script", "style"):
            return ""
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self) -> Iterator[Element]:
        yield self
        for child in self.children:
            if isinstance(child, Element):
                yield from child.iter()

    def find_all(self, tag: str | None = None, cls: str | None = None) -> list[Element]:
        """The elements below (and including) this one with ``tag`` and the class ``cls``."""
        return [
            e
            for e in self.iter()
            if (tag is None or e.tag == tag)
            and (cls is None or cls in e.attrs.get("class", "").split())
        ]

    def find(self, tag: str | None = None, cls: str | None = None) -> Element:
        found = self.find_all(tag, cls)
        assert found, f"no <{tag or '*'} class={cls!r}> in the page"
        return found[0]

    def by_id(self, ident: str) -> Element | None:
        return next((e for e in self.iter() if e.attrs.get("id") == ident), None)


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Element(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


@dataclass
class Page:
    """A page after its scripts ran: the serialized DOM, it parsed, and console lines."""

    html: str
    dom: Element
    console: list[str]
    stderr: str

    @property
    def app(self) -> Element:
        found = self.dom.by_id("app")
        assert found is not None, self.html[:2000]
        return found

    def title(self) -> str:
        return self.dom.find("title").text()


def parse(html: str) -> Element:
    builder = _Builder()
    builder.feed(html)
    builder.close()
    return builder.root


def dump_dom(url: str, *, budget_ms: int = 3000, tz: str | None = None) -> Page:
    """Open ``url`` in headless Chromium and return its DOM once its scripts ran (and its
    timers, up to ``budget_ms`` of virtual time); ``tz``: the browser's time zone."""
    proc = _run(url, f"--virtual-time-budget={budget_ms}", "--dump-dom", tz=tz)
    assert proc.returncode == 0, proc.stderr[-3000:]
    console = [line for line in proc.stderr.splitlines() if _CONSOLE.search(line)]
    return Page(proc.stdout, parse(proc.stdout), console, proc.stderr)


def screenshot(url: str, out: Path, *, width: int = 1200, height: int = 1600) -> Path:
    """A PNG of ``url`` at ``width`` x ``height`` pixels, written to ``out``."""
    proc = _run(url, "--hide-scrollbars", f"--window-size={width},{height}",
                "--virtual-time-budget=2000", f"--screenshot={out}")  # fmt: skip
    assert proc.returncode == 0 and out.exists(), proc.stderr[-3000:]
    return out


def file_url(path: Path) -> str:
    return path.resolve().as_uri()
