"""Names starting with ``_`` are scratch space: usable inside the step, never stored.

Run it: ``python examples/ephemeral.py run``
"""

from asyncflow import FlowSpec, step


class EphemeralFlow(FlowSpec):
    """``_temp`` lives only in start; ``result`` is an artifact."""

    @step
    def start(self):
        self._temp = "temporary"  # private: not persisted, not passed on
        self.result = f"permanent (built from a {len(self._temp)}-letter scratch value)"
        self.next(self.end)

    @step
    def end(self):
        print(f"result: {self.result}")
        # A fresh instance runs each step, so _temp is simply not there.
        self.temp_visible = hasattr(self, "_temp")
        print(f"hasattr(self, '_temp') in end: {self.temp_visible}")


if __name__ == "__main__":
    EphemeralFlow.main()
