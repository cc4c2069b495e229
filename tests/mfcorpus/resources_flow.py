"""@resources, as a Metaflow user writes it: recorded with the run, read back from the client."""

from asyncflow import FlowSpec, kubernetes, resources, step


class ResourcesFlow(FlowSpec):
    @resources(cpu=2, memory=8192, gpu=0)
    @step
    def start(self):
        self.items = [1, 2, 3]
        self.next(self.square, foreach="items")

    @resources(memory=1024)
    @kubernetes(cpu=4, image="python:3.12")
    @step
    def square(self):
        self.value = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.value for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("total", self.total)


if __name__ == "__main__":
    ResourcesFlow()
