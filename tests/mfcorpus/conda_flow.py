"""@conda_base / @conda / @pypi as a Metaflow user writes them."""

from asyncflow import FlowSpec, conda, conda_base, pypi, step


@conda_base(packages={"numpy": ">=1.20"}, python=">=3.10")
class CondaFlow(FlowSpec):
    @conda(packages={"msgpack": ""})
    @step
    def start(self):
        import msgpack

        self.packed = len(msgpack.packb([1, 2, 3]))
        self.next(self.train)

    @pypi(packages={"cloudpickle": ">=2"})
    @step
    def train(self):
        import numpy

        self.total = int(numpy.arange(4).sum())
        self.next(self.end)

    @step
    def end(self):
        print("total", self.total)


if __name__ == "__main__":
    CondaFlow()
