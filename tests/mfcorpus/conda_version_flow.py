"""@conda_base asks for versions other than those installed: a warning, and the run goes on."""

from asyncflow import FlowSpec, conda_base, step


@conda_base(packages={"numpy": "1.5.3"}, python="3.6.15")
class VersionFlow(FlowSpec):
    @step
    def start(self):
        self.x = 1
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    VersionFlow()
