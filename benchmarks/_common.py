"""Helpers shared by the benchmark scripts: arguments, timing, statistics, the report table.

Every script prints its figures and, next to them, the ratio to a baseline measured in the
same process and the same run, so a slow or busy machine moves both sides together. The
machine these were written on is a shared 2-core VM: always read medians of several runs.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Report",
    "baselines_flag",
    "drop_caches",
    "environment",
    "parse_args",
    "scratch_dir",
    "timed",
    "touch_memory",
]


def parse_args(
    description: str, repeat: int, extra: Callable[[argparse.ArgumentParser], None] | None = None
) -> argparse.Namespace:
    """``--repeat N``, ``--quick`` (a smoke run of a few seconds) and ``--json PATH``."""
    parser = argparse.ArgumentParser(description=description)
    if extra is not None:
        extra(parser)
    parser.add_argument(
        "--repeat", type=int, default=repeat, help=f"measurements per figure (default {repeat})"
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes and one repeat: a CI smoke run"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument(
        "--dir",
        metavar="DIR",
        default=os.environ.get("BENCH_DIR") or None,
        help="where scratch stores go (default: the system temp folder)",
    )
    args = parser.parse_args()
    if args.quick:
        args.repeat = 1
    args.repeat = max(1, args.repeat)
    return args


def baselines_flag(parser: argparse.ArgumentParser) -> None:
    """``--no-baselines``: measure asyncflow only (for profiling runs)."""
    parser.add_argument(
        "--no-baselines",
        dest="baselines",
        action="store_false",
        help="skip the baselines and the reopen wait (e.g. under a profiler)",
    )


def environment() -> dict[str, Any]:
    """What the figures depend on: interpreter, SQLite, CPU count, load at the start."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "loadavg_1min": round(load[0], 2),
    }


@contextlib.contextmanager
def scratch_dir(parent: str | None, prefix: str) -> Iterator[str]:
    """A fresh folder for stores, removed afterwards (only a handful of files each)."""
    path = tempfile.mkdtemp(prefix=prefix, dir=parent)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds ``fn()`` took (with the collector run first, so it rarely runs inside)."""
    gc.collect()
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def touch_memory(nbytes: int = 400 << 20) -> None:
    """Allocate, write and free ``nbytes``.

    On a fresh VM the first write to never-used memory is ~10x slower than later ones (the
    host backs guest pages lazily); touching some memory first keeps that out of the
    first measurement.
    """
    buf = bytearray(nbytes)
    del buf


def drop_caches() -> bool:
    """Write back and drop the page cache (root on Linux only); False if not allowed."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        return False
    return True


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class Figure:
    """One reported figure: samples, unit, optional baseline and target."""

    name: str
    samples: list[float]
    unit: str
    scale: float = 1.0
    baseline: str | None = None
    baseline_samples: list[float] = field(default_factory=list)
    target: float | None = None
    higher_is_better: bool = False
    note: str = ""

    @property
    def median(self) -> float:
        return _median(self.samples) * self.scale

    @property
    def ratio(self) -> float | None:
        if not self.baseline_samples:
            return None
        base = _median(self.baseline_samples) * self.scale
        return self.median / base if base else None

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        if self.higher_is_better:
            return self.median >= self.target
        return self.median <= self.target


class Report:
    """Collects figures and prints them as a table (and optionally JSON)."""

    def __init__(self, title: str, args: argparse.Namespace) -> None:
        self.title = title
        self.args = args
        self.figures: list[Figure] = []
        self.env = environment()

    def add(self, name: str, samples: list[float], unit: str, **kw: Any) -> Figure | None:
        """Add a figure; one without samples (a skipped measurement) is left out."""
        if not samples:
            return None
        fig = Figure(name, list(samples), unit, **kw)
        self.figures.append(fig)
        return fig

    def print(self) -> None:
        env = self.env
        mode = "quick" if self.args.quick else f"repeat={self.args.repeat}"
        print(
            f"\n== {self.title} ({mode}; Python {env['python']}, SQLite {env['sqlite']}, "
            f"{env['cpus']} CPUs, load {env['loadavg_1min']} at start)"
        )
        head = f"{'figure':<52} {'median':>12} {'min':>10} {'max':>10}  {'ratio':>8}  target"
        print(head)
        print("-" * len(head))
        for fig in self.figures:
            lo = min(fig.samples) * fig.scale if fig.samples else float("nan")
            hi = max(fig.samples) * fig.scale if fig.samples else float("nan")
            ratio = fig.ratio
            ratio_text = f"{ratio:8.2f}" if ratio is not None else " " * 8
            target = ""
            if fig.target is not None:
                sign = ">=" if fig.higher_is_better else "<="
                target = f"{sign} {fig.target:g} {'met' if fig.met else 'NOT met'}"
            print(
                f"{fig.name:<52} {_num(fig.median):>9} {fig.unit:<2} {_num(lo):>10} "
                f"{_num(hi):>10}  {ratio_text}  {target}"
            )
            if fig.baseline:
                print(f"{'':<52} ratio is to: {fig.baseline}")
            if fig.note:
                print(f"{'':<52} {fig.note}")
        if self.args.json:
            self.write_json(self.args.json)

    def write_json(self, path: str) -> None:
        data = {
            "title": self.title,
            "env": self.env,
            "repeat": self.args.repeat,
            "quick": self.args.quick,
            "figures": [
                {
                    "name": f.name,
                    "unit": f.unit,
                    "median": f.median,
                    "samples": [s * f.scale for s in f.samples],
                    "baseline": f.baseline,
                    "ratio": f.ratio,
                    "target": f.target,
                    "met": f.met,
                }
                for f in self.figures
            ],
        }
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)


def _num(value: float) -> str:
    if value != value:  # NaN
        return "-"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.4f}"


def progress(text: str) -> None:
    """A progress line on stderr (kept out of the report on stdout)."""
    print(text, file=sys.stderr, flush=True)
