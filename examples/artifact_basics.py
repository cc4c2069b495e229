"""Artifacts: every public attribute set on ``self`` is stored and reaches later steps.

Run it: ``python examples/artifact_basics.py run``
"""

from asyncflow import FlowSpec, step


class ArtifactBasicsFlow(FlowSpec):
    """Set a few artifacts in start, read them downstream, derive a new one."""

    @step
    def start(self):
        # Four artifacts: an int, a str, a list and a dict. (Not `self.name`: that is the
        # flow's own read-only name, like `next`, `input` and `index`.)
        self.count = 42
        self.experiment = "experiment_1"
        self.data = [1, 2, 3, 4, 5]
        self.config = {"model": "resnet", "lr": 0.001}
        self.next(self.process)

    @step
    def process(self):
        # Loaded from the store on first access, then plain attributes.
        print(f"count={self.count} experiment={self.experiment!r} data={self.data}")
        self.result = sum(self.data)
        self.next(self.end)

    @step
    def end(self):
        # Everything set upstream is still visible here.
        print(f"result={self.result} (model {self.config['model']}, lr {self.config['lr']})")


if __name__ == "__main__":
    ArtifactBasicsFlow.main()
