"""``Metaflow()``: the flows of a store, as Metaflow's client lists them."""

from __future__ import annotations

from pathlib import Path

import pytest

from asyncflow import Flow, Metaflow, StoreError
from tests.flows.executor_flows import CpuFlow, FlakyProcessFlow


@pytest.mark.anyio
async def test_metaflow_lists_every_flow_of_the_store_as_flows(store: str) -> None:
    await CpuFlow(store=store, echo=False).run(seconds=0.0, width=1)
    await FlakyProcessFlow(store=store, echo=False, executor="thread").run()
    everything = Metaflow(store)
    names = [flow.name for flow in everything.flows]
    assert names == ["CpuFlow", "FlakyProcessFlow"]
    assert all(isinstance(flow, Flow) for flow in everything)
    assert [flow.name for flow in await everything.aflows()] == names
    assert everything.flows[0].latest_run is not None


def test_metaflow_of_a_missing_store_says_so(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no store"):
        _ = Metaflow(str(tmp_path / "none.db")).flows
