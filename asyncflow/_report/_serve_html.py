"""The HTML pages ``asyncflow serve`` renders on the server: the run list (``/``) and the
error pages (404 and the like). Every string from the store goes through :func:`html.escape`;
the pages have no script at all, and link only to the server's own paths.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlencode

__all__ = ["error_page", "runs_page"]

# How often the list reloads itself while a run it shows is going (seconds).
REFRESH_SECONDS = 5

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1f2328;
background:#f6f8fa}
header{background:#24292f;color:#fff;padding:10px 20px}header a{color:#fff}
main{padding:16px 20px}h1{font-size:18px;margin:0}
table{border-collapse:collapse;background:#fff;width:100%}
th,td{text-align:left;padding:5px 9px;border-bottom:1px solid #d0d7de;vertical-align:top}
th{background:#eaeef2;font-weight:600}form{margin:0 0 12px}
form label{margin-right:10px}.badge{padding:1px 7px;border-radius:9px;font-size:12px;
background:#d0d7de}.s-succeeded{background:#aceebb}.s-failed,.s-crashed{background:#ffcecb}
.s-running{background:#b6e3ff}.s-cancelled{background:#fff1b3}.tag{background:#eaeef2;
border-radius:4px;padding:0 5px;margin-right:3px;font-size:12px;white-space:pre-wrap}
.note{color:#57606a}.problem{color:#cf222e}pre{white-space:pre-wrap;background:#fff;
padding:10px;border:1px solid #d0d7de}
"""


def _e(text: object) -> str:
    """``text`` as HTML text or attribute value: every markup character escaped."""
    return html.escape(str(text), quote=True)


def _when(epoch: float | None) -> str:
    return "-" if epoch is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


def _duration(start: float | None, end: float | None) -> str:
    if start is None:
        return "-"
    seconds = max(0.0, (time.time() if end is None else end) - start)
    if seconds < 60:
        text = f"{seconds:.1f}s"
    elif seconds < 3600:
        text = f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    else:
        text = f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
    return text if end is not None else text + " so far"


def _page(title: str, body: str, *, refresh: bool = False) -> str:
    meta = f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' if refresh else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="referrer" content="no-referrer">{meta}<title>{_e(title)}</title>'
        f"<style>{_CSS}</style></head><body>"
        f'<header><h1><a href="/">asyncflow</a> · {_e(title)}</h1></header>'
        f"<main>{body}</main></body></html>\n"
    )


def _options(values: Iterable[str], chosen: str | None, any_label: str) -> str:
    out = [f'<option value="">{_e(any_label)}</option>']
    for value in values:
        selected = " selected" if value == chosen else ""
        out.append(f'<option value="{_e(value)}"{selected}>{_e(value)}</option>')
    return "".join(out)


def _form(listing: dict[str, Any]) -> str:
    where = listing["filter"]
    flows: list[str] = list(listing["flows"])
    if where["flow"] is not None and where["flow"] not in flows:
        flows.append(where["flow"])
    return (
        '<form method="get" action="/">'
        f'<label>flow <select name="flow">{_options(flows, where["flow"], "any")}</select>'
        "</label>"
        f'<label>status <select name="status">'
        f"{_options(listing['statuses'], where['status'], 'any')}</select></label>"
        f'<label>tag <input name="tag" value="{_e(where["tag"] or "")}" size="16"></label>'
        '<button type="submit">filter</button> <a href="/">clear</a></form>'
    )


def _tags(tags: Sequence[str]) -> str:
    links = []
    for tag in tags:
        href = "/?" + urlencode({"tag": tag})
        links.append(f'<a class="tag" href="{_e(href)}">{_e(tag)}</a>')
    return "".join(links) or "-"


def _row(run: dict[str, Any]) -> str:
    status = str(run["status"])
    return (
        "<tr>"
        f"<td>{_e(run['flow'])}</td>"
        f'<td><a href="{_e(run["url"])}">{_e(run["id"])}</a></td>'
        f'<td><span class="badge s-{_e(status)}">{_e(status)}</span></td>'
        f"<td>{_e(_when(run['created_at']))}</td>"
        f"<td>{_e(_duration(run['created_at'], run['finished_at']))}</td>"
        f"<td>{_tags(run['tags'])}</td>"
        "</tr>"
    )


def runs_page(listing: dict[str, Any]) -> str:
    """The run list page of :func:`~asyncflow._report._runs.list_runs`'s ``listing``.

    It reloads itself every few seconds while a run it lists is going."""
    runs: list[dict[str, Any]] = listing["runs"]
    parts = [_form(listing)]
    if listing["problem"]:
        parts.append(f'<p class="problem">{_e(listing["problem"])}.</p>')
    if not runs:
        what = "No run matches the filter." if any(listing["filter"].values()) else "No runs yet."
        parts.append(f'<p class="note">{_e(what)}</p>')
    else:
        head = "".join(
            f"<th>{h}</th>" for h in ("flow", "run", "status", "started (UTC)", "duration", "tags")
        )
        rows = "".join(_row(run) for run in runs)
        parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        if listing["total"] > len(runs):
            parts.append(
                f'<p class="note">Showing the newest {len(runs)} of {listing["total"]} runs; '
                "filter by flow, status or tag to see the others.</p>"
            )
    live = any(run["status"] == "running" for run in runs)
    return _page(f"runs of {listing['store']}", "".join(parts), refresh=live)


def error_page(title: str, message: str) -> str:
    """A page saying what went wrong (``message``, from the store or the client: escaped)
    and linking back to the run list."""
    body = f'<pre>{_e(message)}</pre><p><a href="/">all runs</a></p>'
    return _page(title, body)
