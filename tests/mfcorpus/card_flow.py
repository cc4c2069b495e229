"""@card and current.card as a Metaflow user writes them."""

from asyncflow import FlowSpec, card, current, step
from asyncflow.cards import Artifact, Image, Markdown, Table


class CardFlow(FlowSpec):
    @card
    @step
    def start(self):
        self.scores = [0.91, 0.88]
        current.card.append(Markdown("# Scores"))
        current.card.extend([Table([self.scores], headers=["train", "test"]), Artifact(self)])
        current.card.refresh()
        self.components = len(next(iter(current.card)))
        self.next(self.report)

    @card(type="default", id="summary", options={}, timeout=45)
    @card(id="images")
    @step
    def report(self):
        current.card["summary"].append(Markdown("done"))
        current.card["images"].append(Image(b"\x89PNG\r\n\x1a\n"))
        current.card["images"].clear()
        current.card.append(Markdown("ambiguous"))  # warns: two cards with ids
        self.summary = len(current.card["summary"])
        self.images = len(current.card["images"])
        self.next(self.end)

    @step
    def end(self):
        current.card.append(Markdown("no card here"))  # warns: no @card on this step


if __name__ == "__main__":
    CardFlow()
