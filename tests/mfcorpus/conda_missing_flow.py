"""A step asks with @pypi for a package that is not installed here."""

from asyncflow import FlowSpec, pypi, step


class MissingPackageFlow(FlowSpec):
    @pypi(packages={"asyncflow-no-such-package-xyz": "1.5.3", "numpy": ""})
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    MissingPackageFlow()
