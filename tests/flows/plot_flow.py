"""A card of pandas and matplotlib components, for tests/test_cards_store.py. Run as a script
(``python tests/flows/plot_flow.py run --store PATH``) in a child process, so the test
process never imports pandas or matplotlib (they would stay in its memory)."""

from __future__ import annotations

import importlib.util

from asyncflow import FlowSpec, card, current, step
from asyncflow.cards import Image, Table


class PlotFlow(FlowSpec):
    @card
    @step
    def start(self) -> None:
        import pandas as pd

        frame = pd.DataFrame({"name": ["a", "b"], "score": [0.5, 1.25]})
        current.card.append(Table.from_dataframe(frame))
        current.card.append(Table.from_dataframe(pd.DataFrame({"i": range(150)})))
        current.card.append(Table.from_dataframe(pd.DataFrame({"i": range(150)}), truncate=False))
        if importlib.util.find_spec("matplotlib") is not None:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            figure, axes = plt.subplots()
            axes.plot([1, 2, 3])
            current.card.append(Image.from_matplotlib(figure, label="line"))
            plt.close(figure)
        if importlib.util.find_spec("PIL") is not None:
            from PIL import Image as PILImage

            current.card.append(Image.from_pil_image(PILImage.new("RGB", (4, 3)), label="pil"))
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


if __name__ == "__main__":
    PlotFlow()
