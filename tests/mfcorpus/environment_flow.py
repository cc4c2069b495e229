"""@environment, as a Metaflow user writes it: the step sees its variables (set in a worker
process for the task), the steps after it and the coordinator do not."""

import os
import subprocess
import sys

from asyncflow import FlowSpec, environment, executor, step


class EnvironmentFlow(FlowSpec):
    @step
    def start(self):
        self.before = os.environ.get("AF_GREETING")
        self.next(self.greet)

    @environment(vars={"AF_GREETING": "hello", "AF_MODE": "corpus"})
    @step
    def greet(self):
        self.greeting = os.environ.get("AF_GREETING")
        self.mode = os.environ.get("AF_MODE")
        self.greet_pid = os.getpid()
        # A program the step starts inherits them too.
        self.child = subprocess.run(
            [sys.executable, "-c", "import os; print(os.environ['AF_GREETING'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        self.next(self.after)

    @executor("process")
    @step
    def after(self):
        # The same worker process (a pool of one): the variables were restored.
        self.after_pid = os.getpid()
        self.after_greeting = os.environ.get("AF_GREETING")
        self.next(self.end)

    @step
    def end(self):
        self.end_greeting = os.environ.get("AF_GREETING")
        self.coordinator_pid = os.getpid()


if __name__ == "__main__":
    EnvironmentFlow()
