"""A static split: both branches see the artifacts of start and run concurrently.

Run it: ``python examples/branches.py run``
"""

from asyncflow import FlowSpec, step


class BranchesFlow(FlowSpec):
    """shared_data feeds two branches; the join reads one branch by name, then merges."""

    @step
    def start(self):
        self.shared_data = [1, 2, 3, 4, 5]
        self.next(self.branch_a, self.branch_b)

    @step
    def branch_a(self):
        self.result_a = sum(self.shared_data)
        self.next(self.join)

    @step
    def branch_b(self):
        self.result_b = max(self.shared_data)
        self.next(self.join)

    @step
    def join(self, inputs):
        # Pick a value from a named branch...
        self.sum_seen_by_a = inputs.branch_a.result_a
        # ...or take everything that does not conflict: result_a (only in branch_a),
        # result_b (only in branch_b) and shared_data (the same in both).
        self.merge_artifacts(inputs)
        self.next(self.end)

    @step
    def end(self):
        print(f"result_a={self.result_a} result_b={self.result_b} data={self.shared_data}")


if __name__ == "__main__":
    BranchesFlow.main()
