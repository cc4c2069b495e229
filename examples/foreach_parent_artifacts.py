"""Artifacts set before a foreach are visible in every one of its tasks.

Run it: ``python examples/foreach_parent_artifacts.py run``
"""

from asyncflow import FlowSpec, step


class ForeachParentFlow(FlowSpec):
    """Each task compares its item with a threshold that start stored once."""

    @step
    def start(self):
        self.config = {"threshold": 0.5}
        self.items = [0.2, 0.5, 0.9]
        self.next(self.process, foreach="items")

    @step
    def process(self):
        # config comes from the parent task, shared by reference (stored once).
        self.item = self.input
        self.status = "high" if self.item > self.config["threshold"] else "low"
        index, num_splits, value = self.foreach_stack()[-1]
        print(f"item {index + 1}/{num_splits} = {value}: {self.status}")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.statuses = {inp.item: inp.status for inp in inputs}
        # A join starts empty (parameters aside): bring config along for end. item and
        # status differ between the tasks, so a plain merge_artifacts() would refuse.
        self.merge_artifacts(inputs, include=["config"])
        self.next(self.end)

    @step
    def end(self):
        print(f"threshold {self.config['threshold']}: {self.statuses}")


if __name__ == "__main__":
    ForeachParentFlow.main()
