"""The Dask executor (being written)."""

from __future__ import annotations

from typing import Any

from .._jobs import Job, Reply, RunPack

__all__ = ["DaskExecutor"]


class DaskExecutor:
    """Runs jobs on Dask workers."""

    def __init__(self, client: Any, address: str | None) -> None:
        self.client = client
        self.address = address

    async def run(self, pack: RunPack, job: Job, pathspec: str) -> Reply:
        """Not written yet."""
        raise NotImplementedError("the dask executor is not written yet")

    async def aclose(self) -> None:
        """Nothing to close yet."""
