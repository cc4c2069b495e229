"""A switch picks one branch; a switch that leads back to its own step makes a loop.

Run it: ``python examples/switch_and_loop.py run`` (or ``--size 50`` for the other branch).
"""

from asyncflow import FlowSpec, Parameter, current, step


class SwitchAndLoopFlow(FlowSpec):
    """Train a small or a big model, chosen from the data size; then refine until good."""

    size = Parameter("size", default=500, help="how many rows there are")

    @step
    def start(self):
        self.kind = "big" if self.size >= 100 else "small"
        # Exactly one of the two runs, chosen by the value of self.kind.
        self.next({"big": self.train_big, "small": self.train_small}, condition="kind")

    @step
    def train_big(self):
        self.error = 0.40
        self.next(self.refine)

    @step
    def train_small(self):
        self.error = 0.20
        self.next(self.refine)

    @step
    def refine(self):
        # The two branches meet here without a join: only one of them ran.
        # Each pass is a new task; it sees what the pass before it set.
        self.error = round(self.error / 2, 4)
        print(f"pass {current.pass_index}: error {self.error}")
        self.state = "again" if self.error > 0.05 else "done"
        self.next({"again": self.refine, "done": self.end}, condition="state")

    @step
    def end(self):
        print(f"{self.kind} model, error {self.error}")


if __name__ == "__main__":
    SwitchAndLoopFlow()
