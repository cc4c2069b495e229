"""``asyncflow report`` and ``asyncflow.report.write_report``: where a report may be written,
from a store or straight from an archive (left byte for byte as it was), in real processes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from asyncflow import Flow, Run, UsageError, export_runs
from asyncflow._cli import main as asyncflow_cli
from asyncflow.report import arender_report, awrite_report, render_report, write_report
from tests.flows import report_flows as rf

pytestmark = pytest.mark.anyio


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = asyncflow_cli(list(argv))
    return code, out.getvalue(), err.getvalue()


def model_in(page: str) -> dict[str, object]:
    found = re.search(r'<script type="application/json" id="model">(.*?)</script>', page, re.S)
    assert found, "the page embeds its model"
    data: dict[str, object] = json.loads(found.group(1))
    return data


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
async def frame_run(store: str) -> str:
    run = await rf.FrameFlow(store=store, echo=False).run()
    return run.pathspec


async def test_write_report_writes_one_page_with_the_model(
    store: str, frame_run: str, tmp_path: Path
) -> None:
    out = tmp_path / "run.html"
    assert write_report(frame_run, out, store=store) == str(out)
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") or page.lower().startswith("<!doctype html>")
    model = model_in(page)
    assert model["format"] == "asyncflow-report"
    assert model["run"]["pathspec"] == frame_run  # type: ignore[index]
    assert render_report(Run(frame_run, store)).count("<script") == page.count("<script")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".report-")] == []


async def test_the_awaitable_twins(store: str, frame_run: str, tmp_path: Path) -> None:
    out = tmp_path / "twin.html"
    await awrite_report(Run(frame_run, store), out)
    page = await arender_report(frame_run, store=store)
    assert model_in(out.read_text(encoding="utf-8"))["run"] == model_in(page)["run"]


async def test_write_report_never_replaces_a_file_unasked(
    store: str, frame_run: str, tmp_path: Path
) -> None:
    out = tmp_path / "run.html"
    out.write_text("mine")
    with pytest.raises(UsageError, match=r"exists already.*overwrite=True"):
        write_report(frame_run, out, store=store)
    assert out.read_text() == "mine"
    write_report(frame_run, out, store=store, overwrite=True)
    assert "asyncflow-report" in out.read_text(encoding="utf-8")


@pytest.mark.parametrize("suffix", ["", "-wal", "-shm", "-journal"])
async def test_write_report_never_writes_over_the_store(
    store: str, frame_run: str, suffix: str
) -> None:
    target = store + suffix
    before = Path(target).read_bytes() if os.path.exists(target) else None
    with pytest.raises(UsageError, match="is the store or archive the run is read from"):
        write_report(frame_run, target, store=store, overwrite=True)
    assert (Path(target).read_bytes() if os.path.exists(target) else None) == before


async def test_write_report_refuses_a_folder_and_a_non_run(
    store: str, frame_run: str, tmp_path: Path
) -> None:
    with pytest.raises(UsageError, match="not a regular file"):
        write_report(frame_run, tmp_path, store=store, overwrite=True)
    with pytest.raises(UsageError, match="pass a Run"):
        write_report(42, tmp_path / "x.html")  # type: ignore[arg-type]


# --- the command line -----------------------------------------------------------------------


async def test_report_command_from_a_store(store: str, frame_run: str, tmp_path: Path) -> None:
    out = tmp_path / "run.html"
    code, stdout, err = cli("report", frame_run, "-o", str(out), "--store", store)
    assert (code, stdout) == (0, "")
    assert f"wrote the report of {frame_run} to {out}" in err
    assert model_in(out.read_text(encoding="utf-8"))["run"]["pathspec"] == frame_run  # type: ignore[index]
    # FLOW alone: its latest run
    await rf.FrameFlow(store=store, echo=False).run()
    latest = Flow("FrameFlow", store).latest_run
    assert latest is not None and latest.pathspec != frame_run
    code, _, err = cli("report", "FrameFlow", "-o", str(out), "--store", store, "--force")
    assert code == 0 and latest.pathspec in err
    assert model_in(out.read_text(encoding="utf-8"))["run"]["pathspec"] == latest.pathspec  # type: ignore[index]


async def test_report_command_refusals(store: str, frame_run: str, tmp_path: Path) -> None:
    out = tmp_path / "run.html"
    out.write_text("mine")
    code, _, err = cli("report", frame_run, "-o", str(out), "--store", store)
    assert code == 2 and "exists already" in err and "--force" in err and err.count("\n") == 1
    assert out.read_text() == "mine"
    code, _, err = cli("report", frame_run, "-o", store, "--store", store, "--force")
    assert code == 2 and "is the store or archive" in err
    code, _, err = cli("report", frame_run, "-o", "", "--store", store)
    assert code == 2 and "names no file" in err
    code, _, err = cli("report", frame_run, "-o", str(out), "--store", store, "--archive", store)
    assert code == 2 and "not both" in err
    code, _, err = cli("report", frame_run, "-o", str(tmp_path / "n.html"), "--archive", store)
    assert code == 2 and "not a run archive" in err
    assert "read it as a store (--store PATH" in err  # said to use --store (was: export it)
    assert not (tmp_path / "n.html").exists()


async def test_report_from_an_archive_leaves_it_unchanged_and_never_unpickles(
    store: str, tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled"
    run = await rf.EvilFlow(store=store, echo=False).run(marker=str(marker))
    archive = tmp_path / "runs.afar"
    export_runs(archive, [Flow("EvilFlow", store)[run.id]])
    before = sha256(archive)
    out = tmp_path / "from-archive.html"
    # A real process, as a user runs it, from another folder.
    done = subprocess.run(
        [sys.executable, "-m", "asyncflow", "report", f"EvilFlow/{run.id}", "-o", str(out),
         "--archive", str(archive)],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sha256(archive) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("runs.afar")) == [
        "runs.afar"
    ]
    assert not marker.exists()
    model = model_in(out.read_text(encoding="utf-8"))
    assert model["source"] == {"kind": "archive", "name": "runs.afar"}
    page = out.read_text(encoding="utf-8")
    assert "<script>alert" not in page  # the hostile text is escaped in the embedded JSON
    task = model["steps"][0]["tasks"][0]  # type: ignore[index]
    evil = next(a for a in task["artifacts"] if a["name"] == "evil")
    assert evil["preview"]["kind"] == "unavailable"
    assert task["cards"][0]["components"][0]["text"] == rf.HOSTILE
    # --trust: for an archive whose author you trust, its pickles load (and run their code)
    code, _, err = cli("report", f"EvilFlow/{run.id}", "-o", str(out), "--archive",
                       str(archive), "--force", "--trust")  # fmt: skip
    assert code == 0, err
    assert marker.exists() and sha256(archive) == before
