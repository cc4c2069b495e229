"""The benchmarks behind benchmarks/RESULTS.md's performance table still run: each script's
``--quick`` mode (small sizes, one repeat) in a child process, checked for its figures.

Not a timing test: the figures are printed, never compared with a target here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("script", "extra"),
    [
        ("bench_chain.py", []),
        ("bench_chain.py", ["--async"]),
        ("bench_reads.py", []),
        ("bench_foreach.py", []),
        ("bench_gib.py", []),
        ("bench_large.py", ["--no-drop-caches"]),
    ],
)
def test_benchmark_quick_mode_runs_and_reports(
    script: str, extra: list[str], tmp_path: Path
) -> None:
    out = tmp_path / "figures.json"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / script),
            "--quick",
            *extra,
            "--json",
            str(out),
            "--dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text(encoding="utf-8"))
    assert figures, "no figures written"
    assert done.stdout.strip(), "nothing printed"
