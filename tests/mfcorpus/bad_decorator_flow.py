"""A decorator misused in a flow file: one line and exit 2, not a traceback."""

from asyncflow import FlowSpec, retry, step


class BadDecoratorFlow(FlowSpec):
    @retry(times=-1)
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    BadDecoratorFlow()
