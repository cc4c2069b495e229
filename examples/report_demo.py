"""A run worth a report: a foreach with cards, a numpy artifact, a retried and a failed task.

Run it, then write its report (one HTML file, open it in any browser, send it to anyone):

    python examples/report_demo.py run
    asyncflow report ReportDemoFlow -o report.html

``score`` fails once for ``"beta"`` (``@retry`` runs it again, and it succeeds) and always
for ``"delta"`` (``@catch`` records the error and the run goes on), so the report shows a
retried task and a failed one. The screenshot in the README (``docs/report.png``) is this
flow's report, taken with ``chromium --headless --window-size=1200,1500 --screenshot``.
"""

import time

import numpy as np

from asyncflow import FlowSpec, Parameter, card, catch, current, retry, step
from asyncflow.cards import Artifact, Image, Markdown, Table


def bar_chart(values):
    """A small SVG bar chart of ``values`` (numbers from 0 to 1), as bytes."""
    bars = "".join(
        f'<rect x="{10 + 34 * i}" y="{90 - 80 * v:.1f}" width="26" height="{80 * v:.1f}" '
        f'fill="#3461c1"/>'
        for i, v in enumerate(values)
    )
    width = 20 + 34 * len(values)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="100">'
        f'<line x1="4" y1="90" x2="{width - 4}" y2="90" stroke="#667085"/>{bars}</svg>'
    ).encode()


class ReportDemoFlow(FlowSpec):
    """Score a few models on a toy dataset and compare them."""

    scale = Parameter("scale", default=1.5, help="how much to scale the weights")

    @card
    @step
    def start(self):
        self.models = ["alpha", "beta", "gamma", "delta"]
        current.card.append(Markdown("# Plan\n\nScore **4 models**, each in its own task."))
        self.next(self.score, foreach="models")

    @card
    @retry(times=1)
    @catch(var="error")
    @step
    def score(self):
        self.model = self.input
        time.sleep(0.05 * (1 + self.index))  # work of some length, for the report's timeline
        if self.model == "beta" and current.retry_count == 0:
            raise ConnectionError("the scoring service did not answer (it will on the retry)")
        if self.model == "delta":
            raise ValueError("model delta has no weights: train it first")
        self.weights = np.arange(12, dtype=np.float64).reshape(3, 4) * self.scale / (1 + self.index)
        self.accuracy = round(0.70 + 0.05 * self.index, 2)
        print(f"{self.model}: accuracy {self.accuracy}")
        current.card.append(Markdown(f"## {self.model}\n\nAccuracy `{self.accuracy}`."))
        current.card.append(Artifact(self.weights, name="weights"))
        self.next(self.compare)

    @card
    @step
    def compare(self, inputs):
        scored = [i for i in inputs if getattr(i, "error", None) is None]
        self.ranking = sorted(((i.accuracy, i.model) for i in scored), reverse=True)
        best = self.ranking[0][1]
        current.card.append(Markdown(f"# Results\n\nThe best model is *{best}*."))
        current.card.append(
            Table([[model, acc] for acc, model in self.ranking], headers=["model", "accuracy"])
        )
        current.card.append(Image(bar_chart([acc for acc, _ in self.ranking]), label="accuracy"))
        self.next(self.end)

    @step
    def end(self):
        print("best:", self.ranking[0])


if __name__ == "__main__":
    ReportDemoFlow.main()
