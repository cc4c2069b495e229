"""A flow configured by a JSON file: settings in every step and in decorator arguments.

python examples/config.py run                                   # reads config.json
python examples/config.py --config train examples/config.json run   # a file you name
python examples/config.py --config-value train '{"rates": [0.2], "retries": 0, "target": 0.3}' run
"""

from asyncflow import Config, FlowSpec, config_expr, current, retry, step


class ConfigFlow(FlowSpec):
    """Train at the configured learning rates, retrying each task as often as it says."""

    # config.json, next to this file; default_value when that file is missing.
    train = Config("train", default="config.json", default_value={"rates": [0.1], "retries": 0})

    @step
    def start(self):
        self.rates = list(self.train.rates)  # a config is read-only: copy what you change
        self.next(self.fit, foreach="rates")

    @retry(times=config_expr("train.retries"))  # read when each run starts
    @step
    def fit(self):
        self.rate, self.attempts = self.input, current.retry_count + 1
        if self.train.get("flaky") and current.retry_count == 0:
            raise RuntimeError("the first attempt fails, as configured")
        self.loss = round((self.input - self.train.target) ** 2, 4)
        self.next(self.join)

    @step
    def join(self, inputs):
        best = min(inputs, key=lambda inp: inp.loss)
        self.best_rate, self.attempts = best.rate, [inp.attempts for inp in inputs]
        self.next(self.end)

    @step
    def end(self):
        print(f"best rate {self.best_rate} for target {self.train['target']}")


if __name__ == "__main__":
    ConfigFlow()
