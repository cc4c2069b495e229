"""Move a failed run from a laptop to a server as one file, and resume it there.

On the "laptop" the train step fails: it needs a GPU. The failed run is exported into a run
archive, the archive is imported into the "server" store, and the run is resumed there:
the prepare step is not run again (its artifacts come along in the archive), only train and
what follows it run. Both stores and the archive live in a temporary folder.

    python examples/share_a_run.py
"""

import asyncio
import os
import tempfile

import numpy as np

import asyncflow
from asyncflow import Flow, FlowSpec, StepFailed, step


class TrainOnGPU(FlowSpec):
    """Prepare data (slow, done once), then train (needs a GPU)."""

    @step
    def start(self):
        rng = np.random.default_rng(0)
        self.x = rng.random(1000)
        self.y = 3 * self.x + 0.5
        print("prepared", self.x.size, "samples")
        self.next(self.train)

    @step
    def train(self):
        if os.environ.get("HAS_GPU") != "1":
            raise RuntimeError("no GPU on this machine")
        self.slope, self.intercept = np.polyfit(self.x, self.y, 1)
        self.next(self.end)

    @step
    def end(self):
        print(f"y = {self.slope:.2f}*x + {self.intercept:.2f}")


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        laptop = os.path.join(tmp, "laptop.db")
        server = os.path.join(tmp, "server.db")
        archive = os.path.join(tmp, "failed-run.afa")

        os.environ.pop("HAS_GPU", None)
        try:
            await TrainOnGPU(store=laptop, echo=False).run()
        except StepFailed as exc:
            print(f"laptop: {exc.pathspec} failed: {exc.__cause__}")

        failed = Flow("TrainOnGPU", laptop).latest_run
        assert failed is not None
        info = failed.export(archive)
        print(
            f"laptop: exported {', '.join(info.runs)} to {os.path.basename(archive)} "
            f"({os.path.getsize(archive)} bytes, {info.blobs} values)"
        )

        [imported] = asyncflow.import_archive(archive, store=server)
        print(f"server: imported it as {imported.pathspec} ({imported.status})")

        os.environ["HAS_GPU"] = "1"
        run = await TrainOnGPU(store=server, echo=False).resume(imported.id)
        cloned = [s.name for s in run if s.task.origin_task_id is not None]
        print(f"server: resumed as {run.pathspec}: {run.status}; reused {cloned} from the laptop")
        print(f"server: slope = {run.data.slope:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
