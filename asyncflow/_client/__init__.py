"""Reading runs back from a store: ``Flow``, ``Run``, ``Step``, ``Task``, ``DataArtifact``.

Each object is a cheap snapshot: the store path, its ids and the row it was read from. It
holds no open connection of its own and pickles. Every read that touches the store has an
awaitable twin, prefixed ``a``; both forms run the same I/O-free plan (``_store._queries``),
the sync one on ``sqlite3``, the async one on ``aiosqlite`` (so it never blocks the loop).
Reads that need no I/O (a step's tasks, a task's record) have no twin.

==================================  ===================================================
sync                                awaitable twin
==================================  ===================================================
``Flow(name, store)``               ``await Flow.aopen(name, store)``
``Run("Flow/12", store)``           ``await Run.aopen("Flow/12", store)`` (also ``Step``,
                                    ``Task``, ``DataArtifact`` by pathspec)
``list_flows(store)``               ``await alist_flows(store)``
``flow.latest_run``                 ``await flow.alatest_run()``
``flow.latest_successful_run``      ``await flow.alatest_successful_run()``
``flow.runs(*tags, tag, limit)``    ``await flow.aruns(*tags, tag, limit)``
``list(flow)``                      ``await flow.aruns()``
``flow[run_id]``                    ``await flow.aget(run_id)``
``run_id in flow``                  ``await flow.acontains(run_id)``
``run.parameters``                  ``await run.aparameters()``
``run.code`` / ``run.source``       ``await run.acode()`` / ``await run.asource()``
``run[step]``                       ``await run.astep(step)``
``list(run)``                       ``await run.asteps()``
``run.steps(*tags)``                ``await run.asteps(*tags)``
``step in run``                     ``await run.acontains(step)``
``run.end_task``                    ``await run.aend_task()``
``run.data.x``                      ``await run.adata("x")``
``run.end_task["x"]``               ``await run.aartifact("x")``
``list(run.data)``                  ``await run.anames()``
``run.refresh()``                   ``await run.arefresh()``
``run.add_tag(t)``                  ``await run.aadd_tag(t)`` (a write, in a worker thread)
``run.remove_tag(t)``               ``await run.aremove_tag(t)``
``run.trust()``                     ``await run.atrust()`` (a write, in a worker thread)
``step.data.x``                     ``await step.adata("x")``
``step.task["x"]``                  ``await step.aartifact("x")``
``list(step.data)``                 ``await step.anames()``
``task.parent``                     ``await task.aparent()``
``task.data.x``                     ``await task.adata("x")``
``task["x"]``                       ``await task.aartifact("x")``
``list(task.data)``                 ``await task.anames()``
``"x" in task`` / ``in task.data``  ``await task.acontains("x")``
``list(task)``                      ``await task.aartifacts()``
``task.stdout`` / ``task.stderr``   ``await task.astdout()`` / ``await task.astderr()``
``art.data``                        ``await art.adata()``
==================================  ===================================================

No I/O, so no twin: ``flow.id``; ``run.id``, ``run.status`` and the rest of a run's record,
``run.graph``, ``run.tags``, ``run.system_tags``, ``run.parent``; ``step.id``,
``step.parent``, ``step.created_at``, ``step.finished_at``, ``step.task``, ``step.tasks`` (a
tuple, and callable as Metaflow's ``step.tasks(*tags)``), ``list(step)``, ``step[task_id]``;
``task.id``, ``task.index``, ``task.exception`` and the rest of a task's record;
``art.name``, ``.sha``, ``.size``, ``.encoding``. Values once read are kept by their
``DataView``: both forms share it.

Connections: the sync reads of a flow share one connection, opened on first use and closed
by ``flow.close()`` (or ``with flow:``); an object opened by its pathspec (``Run("Flow/12")``)
has one of its own, closed by ``run.close()`` (or ``with run:``) or when it is collected.
Each awaitable read opens a short-lived connection (an aiosqlite thread), unless inside
``async with Flow.aopen(name, store) as flow:`` (or ``async with flow:``), where they share
one: the faster form for many reads. No async connection outlives its block: a forgotten
aiosqlite connection would keep the interpreter from exiting.
"""

from ._data import DataArtifact as DataArtifact
from ._data import DataView as DataView
from ._flow import Flow as Flow
from ._flow import FlowOpener as FlowOpener
from ._flow import alist_flows as alist_flows
from ._flow import list_flows as list_flows
from ._run import Run as Run
from ._step import Step as Step
from ._task import Task as Task

__all__ = [
    "DataArtifact",
    "DataView",
    "Flow",
    "FlowOpener",
    "Run",
    "Step",
    "Task",
    "alist_flows",
    "list_flows",
]
