"""A plain flow for the commands asyncflow refuses (argo-workflows, step-functions, ...)."""

from asyncflow import FlowSpec, step


class PlainFlow(FlowSpec):
    @step
    def start(self):
        self.greeting = "hello"
        print("starting")
        self.next(self.end)

    @step
    def end(self):
        print("the end")


if __name__ == "__main__":
    PlainFlow()
