"""A flow of one step, marked both first and last (Metaflow 2.19)."""

from asyncflow import FlowSpec, current, step


class SingleStepFlow(FlowSpec):
    @step(start=True, end=True)
    def only(self):
        self.answer = 42
        self.where = current.step_name


if __name__ == "__main__":
    SingleStepFlow()
