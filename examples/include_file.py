"""IncludeFile: a file's content, read once when the run starts, as a read-only artifact.

    python examples/include_file.py run
    python examples/include_file.py run --data examples/data.csv

A relative path given on the command line resolves against the current directory; the
default here is computed from this file's location, so it works from any directory.
"""

import csv
import os

from asyncflow import FlowSpec, IncludeFile, step

HERE = os.path.dirname(os.path.abspath(__file__))


class IncludeFileFlow(FlowSpec):
    """Parse a CSV that was included in the run and summarise it."""

    data_file = IncludeFile(
        "data",
        help="a CSV with columns city, population, area_km2",
        default=os.path.join(HERE, "data.csv"),
    )

    @step
    def start(self):
        # self.data_file is the file's text (is_text=True is the default).
        self.rows = list(csv.DictReader(self.data_file.splitlines()))
        self.next(self.end)

    @step
    def end(self):
        self.total_population = sum(int(r["population"]) for r in self.rows)
        densest = max(self.rows, key=lambda r: int(r["population"]) / float(r["area_km2"]))
        self.densest_city = densest["city"]
        print(f"{len(self.rows)} cities, {self.total_population} people")
        print(f"densest: {self.densest_city}")


if __name__ == "__main__":
    IncludeFileFlow.main()
