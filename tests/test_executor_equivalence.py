"""The same flows give the same stored results on threads and in worker processes.

Every graph shape of the scheduler tests, and the artifact flows (every codec, in-place
mutation, merge_artifacts), run once on threads and once with ``executor="process"``; each
step's tasks must store exactly the same artifacts (same names, same content hashes) and the
process run must pass the shape's own checks (values, join order).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from asyncflow import FlowSpec, Run
from tests.flows import artifacts as af
from tests.test_scheduler import SHAPES, Shape

pytestmark = pytest.mark.anyio

# Artifacts that record when or where a task ran differ by nature.
_VOLATILE = {"pid", "t0", "t1", "started", "finished", "order", "seen_at"}


def stored(run: Run) -> dict[str, list[dict[str, str]]]:
    """Per step, the artifacts (name -> sha) of its tasks, in a canonical order."""
    out: dict[str, list[dict[str, str]]] = {}
    for step in run:
        tasks = [{a.name: a.sha for a in task if a.name not in _VOLATILE} for task in step]
        out[step.name] = sorted(tasks, key=lambda t: sorted(t.items()))
    return out


async def both(flow: type[FlowSpec], tmp: Path) -> tuple[Run, Run]:
    threads = await flow(store=str(tmp / "t.db"), echo=False).run()
    processes = await flow(store=str(tmp / "p.db"), echo=False, executor="process").run()
    return threads, processes


@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
async def test_every_graph_shape_stores_the_same_on_processes(shape: Shape, tmp_path: Path) -> None:
    threads, processes = await both(shape.flow, tmp_path)
    assert processes.successful
    shape.check(processes)
    assert stored(processes) == stored(threads)


@pytest.mark.parametrize(
    "flow",
    [af.RoundTripFlow, af.MutateFlow, af.MergeFlow, af.MergeForeachFlow, af.InputMutationFlow],
    ids=lambda f: f.__name__,
)
async def test_artifact_flows_store_the_same_on_processes(
    flow: type[FlowSpec], tmp_path: Path
) -> None:
    threads, processes = await both(flow, tmp_path)
    assert processes.successful
    assert stored(processes) == stored(threads)
    if flow is af.RoundTripFlow:  # every sample value came back equal in the worker
        assert processes["check_plain"].task.data.plain_problems == {}
