"""A flow whose steps are named like the command words of ``python flow.py``."""

from __future__ import annotations

from asyncflow import FlowSpec, Parameter, step


class CommandWordsFlow(FlowSpec):
    """start -> check -> show -> end; a parameter named ``show`` too."""

    epochs = Parameter("epochs", default=1)

    @step
    def start(self) -> None:
        self.seen = ["start"]
        self.next(self.check)

    @step
    def check(self) -> None:
        self.seen = [*self.seen, "check"]
        self.next(self.show)

    @step
    def show(self) -> None:
        self.seen = [*self.seen, "show"]
        self.next(self.end)

    @step
    def end(self) -> None:
        self.epochs_seen = self.epochs


if __name__ == "__main__":
    CommandWordsFlow.main()
