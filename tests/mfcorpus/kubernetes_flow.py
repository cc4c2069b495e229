"""@kubernetes and @batch, as a Metaflow user writes them: accepted, run here, said once."""

from asyncflow import FlowSpec, batch, kubernetes, step


class KubernetesFlow(FlowSpec):
    @kubernetes
    @step
    def start(self):
        self.x = 1
        self.next(self.train)

    @kubernetes(cpu=2, memory=8192, image="python:3.12", node_selector={"gpu": "a100"})
    @step
    def train(self):
        self.x += 1
        self.next(self.score)

    @batch(queue="default", memory=2048)
    @step
    def score(self):
        self.x *= 10
        self.next(self.end)

    @step
    def end(self):
        print("x is", self.x)


if __name__ == "__main__":
    KubernetesFlow()
