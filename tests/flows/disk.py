"""Flows for the disk tests (tests/test_disk.py, benchmarks/bench_disk.py).

``BulkFlow`` stores ``mib`` MiB of random float64 numbers (incompressible, distinct per
``seed``) as one numpy artifact; ``TinyFlow`` stores one small value.
"""

from __future__ import annotations

import numpy as np

from asyncflow import FlowSpec, Parameter, step


class BulkFlow(FlowSpec):
    """start (one large array) -> end."""

    mib = Parameter("mib", default=20)
    seed = Parameter("seed", default=0)

    @step
    def start(self) -> None:
        rng = np.random.default_rng(self.seed)
        self.values = rng.random(self.mib * (1 << 20) // 8)
        self.next(self.end)

    @step
    def end(self) -> None:
        self.total = float(self.values[:10].sum())


class TinyFlow(FlowSpec):
    """start -> end, one small artifact."""

    @step
    def start(self) -> None:
        self.x = 1
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


if __name__ == "__main__":
    import sys

    {"BulkFlow": BulkFlow, "TinyFlow": TinyFlow}[sys.argv.pop(1)].main()
