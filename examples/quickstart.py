"""The README's quickstart: fit y = w*x + b by gradient descent at several learning rates,
one foreach task per rate, and keep the best.

    python examples/quickstart.py run
    python examples/quickstart.py run --epochs 500 --store runs.db
"""

import random

from asyncflow import FlowSpec, Parameter, step


class TrainFlow(FlowSpec):
    """Try several learning rates in parallel and keep the best fit."""

    epochs = Parameter("epochs", default=200, help="gradient steps per learning rate")

    @step
    async def start(self):
        # A coroutine step runs on the event loop: fine for light work and for awaiting I/O.
        rng = random.Random(0)
        self.xs = [rng.uniform(-1, 1) for _ in range(100)]
        self.ys = [3.0 * x + 0.5 + rng.gauss(0, 0.1) for x in self.xs]
        self.rates = [0.01, 0.05, 0.1, 0.5]
        self.next(self.train, foreach="rates")

    @step
    def train(self):
        # A plain step runs in a worker thread, so a blocking call here leaves the loop free.
        lr, w, b, n = self.input, 0.0, 0.0, len(self.xs)
        for _ in range(self.epochs):
            errors = [w * x + b - y for x, y in zip(self.xs, self.ys, strict=True)]
            w -= lr * 2 * sum(e * x for e, x in zip(errors, self.xs, strict=True)) / n
            b -= lr * 2 * sum(errors) / n
        self.lr = lr
        self.weights = (w, b)
        self.loss = sum((w * x + b - y) ** 2 for x, y in zip(self.xs, self.ys, strict=True)) / n
        self.next(self.join)

    @step
    def join(self, inputs):
        best = min(inputs, key=lambda inp: inp.loss)
        self.losses = {inp.lr: round(inp.loss, 5) for inp in inputs}
        self.best_lr, self.weights, self.loss = best.lr, best.weights, best.loss
        self.next(self.end)

    @step
    async def end(self):
        w, b = self.weights
        print(f"best learning rate {self.best_lr}: y = {w:.2f}*x + {b:.2f} (loss {self.loss:.4f})")


if __name__ == "__main__":
    TrainFlow.main()
