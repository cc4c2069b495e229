"""start -> middle -> end, plain steps: what starting the process pool costs a run.

See benchmarks/RESULTS.md, "Executors" (pool start), for the command and the figures.
"""

from asyncflow import FlowSpec, step


class Hello3(FlowSpec):
    @step
    def start(self):
        self.x = 1
        self.next(self.middle)

    @step
    def middle(self):
        self.x += 1
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    Hello3.main()
