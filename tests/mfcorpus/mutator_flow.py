"""A Metaflow flow that adds @retry to every step with a FlowMutator. asyncflow refuses it at
class definition; if a hook ever ran it would leave the file `mutated` behind."""

from asyncflow import FlowMutator, FlowSpec, step


class RetryEverything(FlowMutator):
    def pre_mutate(self, mutable_flow):
        open("mutated", "w").close()
        for _, s in mutable_flow.steps:
            s.add_decorator("retry", deco_kwargs={"times": 2})

    def mutate(self, mutable_flow):
        open("mutated", "w").close()


@RetryEverything
class MutatedFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    MutatedFlow()
