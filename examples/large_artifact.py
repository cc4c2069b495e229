"""A large numpy array: stored once, passed on by reference, loaded only where it is read.

    python examples/large_artifact.py run
    python examples/large_artifact.py run --size_mb 200

Only the step that reads ``self.samples`` loads it; ``report`` reads small summaries and
never pays for the array, although it is visible there (and in end) too.
"""

import time

import numpy as np

from asyncflow import FlowSpec, Parameter, step


class LargeArtifactFlow(FlowSpec):
    """Make a big array, summarise it in one step, report without loading it."""

    size_mb = Parameter("size_mb", default=50, help="size of the array in megabytes")

    @step
    def start(self):
        count = self.size_mb * (1 << 20) // 8
        self.samples = np.random.default_rng(7).normal(10.0, 2.0, size=count)
        print(f"made {self.samples.nbytes / 2**20:.0f} MiB of float64 samples")
        self.next(self.summarise)

    @step
    def summarise(self):
        began = time.perf_counter()
        samples = self.samples  # the first read loads the array from the store
        took = time.perf_counter() - began
        print(f"loaded {samples.nbytes / 2**20:.0f} MiB in {took * 1000:.0f} ms")
        self.summary_stats = {
            "mean": float(samples.mean()),
            "std": float(samples.std()),
            "count": int(samples.size),
        }
        self.next(self.report)

    @step
    def report(self):
        stats = self.summary_stats
        # What this task has loaded so far: artifacts appear on self when first read.
        self.loaded_here = sorted(n for n in vars(self) if not n.startswith("_"))
        print(f"mean {stats['mean']:.3f}, std {stats['std']:.3f}, n {stats['count']}")
        print(f"artifacts loaded by report: {self.loaded_here}")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    LargeArtifactFlow.main()
