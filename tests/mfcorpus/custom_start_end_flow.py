"""A flow whose first and last steps have names of their own (Metaflow 2.19's
@step(start=True) / @step(end=True)). Set BREAK_SCORE=1 to make one foreach task fail, then
`resume` without it."""

import os

from asyncflow import FlowSpec, Parameter, current, step


class CustomStartEndFlow(FlowSpec):
    """Scores a few numbers, from `load` to `report`."""

    scale = Parameter("scale", default=10, help="what each number is multiplied by")

    @step(start=True)
    def load(self):
        """Read the numbers."""
        self.numbers = [1, 2, 3]
        self.visited = [current.step_name]
        self.next(self.score, foreach="numbers")

    @step
    def score(self):
        if os.environ.get("BREAK_SCORE") == "1" and self.input == 2:
            raise RuntimeError("scoring broke on 2")
        self.scored = self.input * self.scale
        self.next(self.collect)

    @step()
    def collect(self, inputs):
        self.total = sum(i.scored for i in inputs)
        self.visited = [*inputs[0].visited, current.step_name]
        self.next(self.report)

    @step(end=True)
    def report(self):
        """Say the total."""
        self.visited = [*self.visited, current.step_name]
        print(f"total {self.total} from {current.step_name}")


if __name__ == "__main__":
    CustomStartEndFlow()
