"""Flows for tests/test_attacker_round2.py: a small run to tamper with, run from a shell."""

from __future__ import annotations

from asyncflow import FlowSpec, step


class Victim(FlowSpec):
    """Stores a small list ``x`` in start; end reads it (so a resume from end loads it)."""

    @step
    def start(self) -> None:
        self.x = [1, 2, 3]
        self.next(self.end)

    @step
    def end(self) -> None:
        self.n = len(self.x)


if __name__ == "__main__":
    Victim.main()
