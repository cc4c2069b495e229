"""One self-contained HTML page of a run, drawn in the browser from the report model.

:func:`render_page` embeds the model (a JSON-able dict, ``"format": "asyncflow-report"``)
as JSON in ``<script type="application/json" id="model">`` and adds a small renderer of our
own (``_assets/*.js``, concatenated in :data:`SCRIPT_FILES` order) and stylesheet
(``_assets/page.css``). Nothing is fetched: no fonts, no CDN, no images but ``data:`` ones,
so the file works offline and can be mailed around.

Every string of the model comes from a store or an archive and is treated as hostile:

* in the JSON, ``<``, ``>``, ``&``, U+2028 and U+2029 are written as ``\\uXXXX``, so no text
  can close the data block or open a comment or a tag;
* the renderer builds the page with ``createElement`` / ``textContent`` only (never
  ``innerHTML``, ``insertAdjacentHTML`` or ``document.write`` with data);
* a Content-Security-Policy meta allows only the renderer itself (by its sha256), inline
  styles and ``data:`` images, so even a missed escape cannot run script or fetch anything.

``live={"url": ..., "interval_ms": ...}`` (the ``serve`` command) makes the page fetch the
model again from ``url`` while the run is running and re-draw it, keeping what is open; the
CSP then allows ``connect-src 'self'``. Without ``live`` the page never fetches.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import re
from importlib import resources
from typing import Any

__all__ = ["SCRIPT_FILES", "csp_for", "embed_json", "render_page", "script_hash"]

SCRIPT_FILES = (
    "core.js",
    "markdown.js",
    "preview.js",
    "graph.js",
    "timeline.js",
    "tasks.js",
    "main.js",
)
_STYLE_FILE = "page.css"

_SURROGATE = re.compile("[\ud800-\udfff]")  # a lone one cannot be written as UTF-8
# The three characters that could end a <script> data block or start markup in it, and the
# two that end a line in old JavaScript; json.dumps leaves all five as they are.
_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath("_assets", name).read_text(encoding="utf-8")


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None (JSON has no such numbers)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def embed_json(value: Any) -> str:
    """``value`` as JSON that is safe inside an HTML ``<script type="application/json">``."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError:
        text = json.dumps(_finite(value), ensure_ascii=False, separators=(",", ":"))
    text = text.translate(_ESCAPES)
    if _SURROGATE.search(text):
        # Written as the text of its escape (backslash, u, 4 digits), as the store keeps it:
        # a lone surrogate in a page's strings crashes Chromium's DOM serialiser (found by an
        # attacker: --dump-dom died with SIGILL).
        text = _SURROGATE.sub(lambda m: f"\\\\u{ord(m.group()):04x}", text)
    return text


def script_hash(script: str) -> str:
    """The CSP source for an inline script: ``'sha256-<base64 of its digest>'``."""
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def csp_for(script: str, *, live: bool) -> str:
    """The page's Content-Security-Policy: nothing but this script, inline styles and data:
    images; ``connect-src 'self'`` only for a live page."""
    parts = [
        "default-src 'none'",
        "img-src data:",
        "style-src 'unsafe-inline'",
        f"script-src {script_hash(script)}",
        "base-uri 'none'",
        "form-action 'none'",
    ]
    if live:
        parts.append("connect-src 'self'")
    return "; ".join(parts)


def render_page(model: dict[str, Any], *, live: dict[str, Any] | None = None) -> str:
    """The HTML text of one self-contained report page of ``model``.

    :param model: the report model (``"format": "asyncflow-report"``), as the report's model
        builder makes it: plain JSON-able data, every string possibly hostile.
    :param live: ``{"url": "/path", "interval_ms": 1000}`` to re-fetch the model from ``url``
        (a URL on the serving host) every ``interval_ms`` milliseconds (at least 100) while
        the run is running (``serve``); None (the default) for a page that never fetches.
    """
    live_config = None if live is None else dict(live)
    script = "\n".join(_asset(name) for name in SCRIPT_FILES)
    run = model.get("run")
    if not isinstance(run, dict):
        run = {}
    title = _SURROGATE.sub(
        "\ufffd", f"{run.get('flow', '?')}/{run.get('id', '?')} · asyncflow report"
    )
    return "".join(
        [
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
            '<meta http-equiv="Content-Security-Policy" content="',
            html.escape(csp_for(script, live=live_config is not None)),
            '">\n<meta name="referrer" content="no-referrer">\n',
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
            "<title>",
            html.escape(title).replace("\u2028", "&#8232;").replace("\u2029", "&#8233;"),
            "</title>\n<style>\n",
            _asset(_STYLE_FILE),
            "</style>\n</head>\n<body>\n",
            '<noscript><p class="noscript">This report is drawn by JavaScript: open it in a '
            "browser with scripts enabled.</p></noscript>\n",
            '<div id="app" data-errors="0"></div>\n',
            '<script type="application/json" id="model">',
            embed_json(model),
            "</script>\n",
            '<script type="application/json" id="live">',
            embed_json(live_config),
            "</script>\n<script>",
            script,
            "</script>\n</body>\n</html>\n",
        ]
    )
