"""A foreach: one task per element, all running concurrently, joined in index order.

Run it: ``python examples/foreach.py run``
"""

from asyncflow import FlowSpec, step


def compute_score(letter):
    """A toy score: A -> 0.25, B -> 0.5, C -> 0.75."""
    return (ord(letter) - ord("A") + 1) / 4


class ForeachFlow(FlowSpec):
    """Process items A, B and C in parallel, then average their scores."""

    @step
    def start(self):
        self.items = ["A", "B", "C"]
        self.next(self.process, foreach="items")

    @step
    def process(self):
        # self.input is this task's element, self.index its position (neither is stored).
        self.processed = f"Processed {self.input}"
        self.score = compute_score(self.input)
        print(f"task {self.index}: {self.processed}, score {self.score}")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.all_processed = [inp.processed for inp in inputs]
        self.all_scores = [inp.score for inp in inputs]
        self.avg_score = sum(self.all_scores) / len(self.all_scores)
        self.next(self.end)

    @step
    def end(self):
        print(f"{self.all_processed} -> average score {self.avg_score}")


if __name__ == "__main__":
    ForeachFlow.main()
