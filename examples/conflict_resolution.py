"""Two branches set the same name to different values: settle it before merging.

Run it: ``python examples/conflict_resolution.py run``
"""

from asyncflow import FlowSpec, MergeArtifactsError, step


class ConflictResolutionFlow(FlowSpec):
    """Both branches score a model; the join keeps the better score."""

    @step
    def start(self):
        self.dataset = "iris"
        self.next(self.branch_a, self.branch_b)

    @step
    def branch_a(self):
        self.model_score = 0.95
        self.trees = 100
        self.next(self.join)

    @step
    def branch_b(self):
        self.model_score = 0.93
        self.layers = 3
        self.next(self.join)

    @step
    def join(self, inputs):
        try:
            self.merge_artifacts(inputs)
        except MergeArtifactsError as exc:
            # Nothing was merged; the error lists every conflicting name.
            self.conflicts = list(exc.names)
            print(f"merge refused, conflicting: {self.conflicts}")
        # A name already set on self is skipped by the merge, so this settles it.
        self.model_score = max(inp.model_score for inp in inputs)
        self.merge_artifacts(inputs)
        self.next(self.end)

    @step
    def end(self):
        print(f"best score {self.model_score}; trees={self.trees}, layers={self.layers}")


if __name__ == "__main__":
    ConflictResolutionFlow.main()
