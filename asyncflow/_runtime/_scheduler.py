"""The scheduler of one run: which task runs next, where, and what it unlocks.

``max_workers`` worker coroutines share two ready queues. A coroutine step is awaited on
the event loop. A plain step goes to a worker thread (``anyio.to_thread``), and that
thread keeps taking ready plain tasks from the queue until it is empty, so a chain of
plain steps or a wide foreach does not pay a thread round trip per task (a round trip
costs more than the task itself). Idle workers are woken only when there is work for
them. All bookkeeping happens under one lock; it is cheap and never held while a step runs.

A resumed run has a clone oracle (``ctx.clones``): a task whose parents are clones is first
offered to it, and if the origin did that task already, its outcome comes from the origin at
once, with no code run and no thread hop of its own. The rest of the scheduling does not know.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque

import anyio
import anyio.abc
import anyio.lowlevel
import anyio.to_thread

from .._spec._flowgraph import FlowGraph, NodeKind
from ._attempt import run_managed, run_plain
from ._context import RunContext, executor_of
from ._model import TaskOutcome, TaskSpec

__all__ = ["Scheduler"]

# How long a worker that runs the run's only tasks may run coroutine steps that never await
# back to back before it lets the rest of the event loop in (and takes a cancellation).
_LOOP_SLICE_S = 0.002


class Scheduler:
    """Runs every task of one run; :attr:`failure` is the first failed task, if any."""

    def __init__(self, ctx: RunContext, max_workers: int) -> None:
        self.ctx = ctx
        self.graph = ctx.graph
        self.failure: TaskOutcome | None = None
        self.tasks_run = 0
        self._max_workers = max_workers
        self._workers = 0
        self._tg: anyio.abc.TaskGroup | None = None
        self._limiter = anyio.CapacityLimiter(max_workers)
        self._lock = threading.Lock()
        self._plain: deque[TaskSpec] = deque()
        self._async: deque[TaskSpec] = deque()
        self._active = 0
        self._idle = 0
        self._wake_pending = False
        self._waiting: dict[tuple[str, tuple[int, ...]], dict[int, TaskOutcome]] = {}
        self._next_id = 1
        self._passes: dict[tuple[str, tuple[int, ...]], int] = {}
        self._loops = _loop_steps(ctx.graph)
        self._event: anyio.Event | None = None
        self._super_event = anyio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def first_task(self) -> TaskSpec:
        """The start task of a new run."""
        return self._spec(self.graph.start_step, (), (), self.ctx.params)

    async def run(self, first: TaskSpec) -> None:
        """Run ``first`` and everything it leads to; return when all tasks have ended."""
        self._loop = asyncio.get_running_loop()
        self._event = anyio.Event()
        if self.ctx.clones is None:
            self._queue(first)
        else:
            # Every clone descends from a cloned start (a task that runs has no cloned
            # descendants), so all cloning happens here, at once: in a thread, since a
            # large run's clones would hold up the loop.
            await anyio.to_thread.run_sync(self._start, first)
        async with anyio.create_task_group() as tg:
            self._tg = tg
            tg.start_soon(self._supervise)

    async def _supervise(self) -> None:
        # Starts workers while queued work outnumbers idle ones (anyio can only start
        # tasks from inside a task, not from the thread-safe callbacks that wake us).
        assert self._tg is not None
        while True:
            with self._lock:
                queued = 0 if self.failure is not None else len(self._async) + len(self._plain)
                spawn = min(self._max_workers - self._workers, queued - self._idle)
                if spawn > 0:
                    self._workers += spawn
                done = self._workers == 0 and self._active == 0 and not queued
                event = self._super_event
            for _ in range(max(0, spawn)):
                self._tg.start_soon(self._worker)
            if done:
                return
            await event.wait()

    # --- workers --------------------------------------------------------------------
    async def _worker(self) -> None:
        slice_end = 0.0  # when this worker next lets the rest of the loop in
        while True:
            with self._lock:
                spec: TaskSpec | None = None
                on_loop = False
                if self.failure is None:
                    if self._async:
                        spec, on_loop = self._async.popleft(), True
                    elif self._plain:
                        spec = self._plain.popleft()
                if spec is not None:
                    self._active += 1
                elif self._active == 0:
                    finished = True
                else:
                    finished = False
                    self._idle += 1
                    event = self._event
            if spec is None:
                if finished:
                    with self._lock:
                        self._workers -= 1
                    self._signal()
                    return
                assert event is not None
                await event.wait()
                with self._lock:
                    self._idle -= 1
                continue
            try:
                if on_loop:
                    outcome = await run_managed(self.ctx, spec, self._limiter)
                    self._complete(outcome, take=False, on_loop=True)
                    # Steps that never await would otherwise run back to back without
                    # letting the rest of the loop in (1,000 of them: 0.1 s). After every
                    # task while others are running or queued (each worker on the loop takes
                    # one turn: a slice each would hold the loop workers x slice); a chain's
                    # lone task only every few ms, as each yield hands the GIL to the store's
                    # writer thread, which then commits step by step (twice as slow).
                    others = self._active or len(self._async) > 1
                    if others or time.monotonic() >= slice_end:
                        await anyio.lowlevel.checkpoint()
                        slice_end = time.monotonic() + _LOOP_SLICE_S
                else:
                    # A thread cannot be interrupted: on cancellation we stop waiting for it,
                    # and the cancelled flag keeps it from committing or starting anything.
                    await anyio.to_thread.run_sync(
                        self._drain, spec, limiter=self._limiter, abandon_on_cancel=True
                    )
            except anyio.get_cancelled_exc_class():
                self.ctx.cancel()
                raise

    def _drain(self, spec: TaskSpec | None) -> None:
        # In a worker thread: run plain tasks back to back while there are any, never far
        # ahead of the store's writer (their records wait in its queue, in memory).
        ctx = self.ctx
        writer = ctx.writer

        def cancelled() -> bool:
            return ctx.cancelled

        while spec is not None and not ctx.cancelled:
            outcome = run_plain(ctx, spec)
            spec = self._complete(outcome, take=True, on_loop=False)
            if spec is not None and writer is not None:
                writer.wait_backlog(cancelled)
        if spec is not None:  # taken, but the run was cancelled: it never starts
            with self._lock:
                self._active -= 1

    def _signal(self) -> None:
        # On the loop: wake idle workers and the supervisor.
        with self._lock:
            self._wake_pending = False
            event, self._event = self._event, anyio.Event()
            sup, self._super_event = self._super_event, anyio.Event()
        if event is not None:
            event.set()
        sup.set()

    def _complete(self, outcome: TaskOutcome, *, take: bool, on_loop: bool) -> TaskSpec | None:
        writer = self.ctx.writer
        writer_error = None if writer is None else writer.run_error(self.ctx.run_id)
        with self._lock:
            self._active -= 1
            self.tasks_run += 1
            if outcome.error is None and writer_error is not None:
                outcome.error = writer_error
            if self.ctx.cancelled:
                pass  # the run is over: nothing more starts, nothing counts as a failure
            elif outcome.error is not None:
                if self.failure is None:
                    self.failure = outcome
            elif self.failure is None:
                self._advance(outcome)
            nxt = None
            if take and self.failure is None and self._plain:
                nxt = self._plain.popleft()
                self._active += 1
            pending = len(self._async) + len(self._plain) if self.failure is None else 0
            # A worker on the loop takes the next task itself once this returns: waking
            # others (and the supervisor) for that one task costs more than a chain's step.
            queued = pending > (1 if on_loop else 0)
            wake = not self._wake_pending and (
                (self._idle > 0 and (queued or (self._active == 0 and not pending)))
                or (queued and self._workers < self._max_workers)
            )
            if wake:
                self._wake_pending = True
        if wake:
            if on_loop:
                self._signal()
            else:
                assert self._loop is not None
                self._loop.call_soon_threadsafe(self._signal)
        return nxt

    # --- the graph ------------------------------------------------------------------
    def _advance(self, done: TaskOutcome) -> None:
        # Under the lock: queue what ``done`` unlocks. Clones end at once, so what they
        # unlock is handled here too, in a loop (a fully cloned run never leaves it).
        todo = [done]
        while todo:
            outcome = todo.pop()
            for spec in self._successors(outcome):
                clone = self._clone(spec, spec.inputs if spec.inputs is not None else [outcome])
                if clone is None:
                    self._queue(spec)
                else:
                    todo.append(clone)

    def _start(self, first: TaskSpec) -> None:
        with self._lock:
            clone = self._clone(first, [])
            if clone is None:
                self._queue(first)
            else:
                self._advance(clone)

    def _clone(self, spec: TaskSpec, parents: list[TaskOutcome]) -> TaskOutcome | None:
        # A task is a clone only if every parent is: a parent that ran again may have
        # handed it different artifacts.
        oracle = self.ctx.clones
        if oracle is None or any(p.origin_task_id is None for p in parents):
            return None
        return oracle.clone(self.ctx, spec)

    def _queue(self, spec: TaskSpec) -> None:
        info = self.graph[spec.step].info
        # The loop manages coroutine steps, steps with policies and steps run elsewhere;
        # the rest drain in threads.
        if executor_of(self.ctx, info) != "thread" or info.retry or info.catch or info.timeout:
            self._async.append(spec)
        else:
            self._plain.append(spec)

    def _spec(
        self,
        step: str,
        path: tuple[int, ...],
        stack: tuple[tuple[int, int, object], ...],
        base: dict[str, bytes],
        inputs: list[TaskOutcome] | None = None,
        *,
        counted: bool = False,
    ) -> TaskSpec:
        # ``counted``: a foreach split announced the task already (RunEvents.split).
        task_id = self._next_id
        self._next_id += 1
        passes = 0  # a step on no loop runs once per foreach path: nothing to count (or keep)
        if step in self._loops:
            key = (step, path)
            passes = self._passes.get(key, 0)
            self._passes[key] = passes + 1
            if self.ctx.events is not None and not counted:
                self.ctx.events.split(step, 1)  # live progress counts a loop's passes
        return TaskSpec(task_id, step, path, stack, base, inputs, passes)

    def _successors(self, done: TaskOutcome) -> list[TaskSpec]:
        node = self.graph[done.step]
        spec = done.spec
        if node.kind is NodeKind.END:
            return []
        if node.kind is NodeKind.FOREACH:
            items = done.foreach_items or []
            count = len(items)
            target = node.out[0]
            if self.ctx.events is not None:
                self.ctx.events.split(target, count)
            return [
                self._spec(
                    target,
                    (*spec.path, i),
                    (*spec.stack, (i, count, item)),
                    done.refs,
                    counted=True,
                )
                for i, item in enumerate(items)
            ]
        out: list[TaskSpec] = []
        # A switch goes on to the one case its task chose; skipped cases never get a task.
        targets = done.targets if node.kind is NodeKind.SWITCH else node.out
        if node.kind is NodeKind.SWITCH and len(targets) != 1:  # never fan out to every case
            raise AssertionError(f"switch task {spec.task_id} of {done.step!r} chose {targets}")
        for target in targets:
            if self.graph[target].is_join:
                ready = self._arrive(target, done)
                if ready is not None:
                    out.append(ready)
            else:
                out.append(self._spec(target, spec.path, spec.stack, done.refs))
        return out

    def _arrive(self, join: str, done: TaskOutcome) -> TaskSpec | None:
        node = self.graph[join]
        spec = done.spec
        if node.join_kind == "foreach":
            slot, expected, _ = spec.stack[-1]
            path, stack = spec.path[:-1], spec.stack[:-1]
            # The input ran: nothing reads its foreach frames again (its index is in its
            # path), and a 100,000-wide join would keep 112 B of them per input.
            spec.stack = stack
        else:
            slot, expected = node.in_.index(done.step), len(node.in_)
            path, stack = spec.path, spec.stack
        key = (join, path)
        arrived = self._waiting.setdefault(key, {})
        arrived[slot] = done
        if len(arrived) < expected:
            return None
        del self._waiting[key]
        inputs = [arrived[i] for i in range(expected)]
        return self._spec(join, path, stack, self.ctx.params, inputs)


def _loop_steps(graph: FlowGraph) -> frozenset[str]:
    """The steps on a loop (that can lead back to themselves, through a switch)."""
    if not any(node.kind is NodeKind.SWITCH for node in graph):
        return frozenset()  # every cycle passes through a switch (_validate)
    found: set[str] = set()
    for node in graph:
        todo, seen = list(node.out), set()
        while todo:
            name = todo.pop()
            if name == node.name:
                found.add(name)
                break
            if name not in seen:
                seen.add(name)
                todo.extend(graph[name].out)
    return frozenset(found)
