"""Write old_store.db and old_archive.afa into the folder given (see README.md); run it with
the asyncflow whose files are wanted first on PYTHONPATH."""

from __future__ import annotations

import asyncio
import os
import sys

import asyncflow

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oldflow import OldFlow


def main(out: str) -> None:
    print(asyncflow.__file__, asyncflow.__version__)
    store = os.path.join(out, "old_store.db")
    asyncio.run(OldFlow(store=store, echo=False).run())
    with asyncflow.Flow("OldFlow", store=store) as flow:
        asyncflow.export_runs(os.path.join(out, "old_archive.afa"), [flow.latest_run])


if __name__ == "__main__":
    main(sys.argv[1])
