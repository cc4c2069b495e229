"""A flow behind a web endpoint: FastAPI with a Runner in its lifespan, live progress as
server-sent events.

    pip install fastapi uvicorn            # not dependencies of asyncflow itself
    cd examples && uvicorn web_service:app --timeout-graceful-shutdown 2
                                           # or: python examples/web_service.py

    curl -X POST localhost:8000/runs -H 'content-type: application/json' -d '{"n": 20}'
                                           # {"run_id": "1", "flow": "CountFlow"}
    curl localhost:8000/runs/1             # {"run_id": "1", ..., "status": "running"}
    curl -N localhost:8000/runs/1/events   # one SSE message per event, until run_finished
    curl -X DELETE localhost:8000/runs/1   # cancels it: {"run_id": "1", ..., "status": "cancelled"}

Runs are stored in $ASYNCFLOW_STORE (else ./asyncflow.db); at most MAX_RUNS go on at once.
Serve it with a graceful-shutdown timeout: uvicorn lets open responses end before it stops
the app, and an event stream ends only with its run, so without one a watched run would keep
the server up until it ends; after the timeout, uvicorn closes them and the lifespan cancels
the runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import Body, FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import StreamingResponse

from asyncflow import (
    FlowSpec,
    NotFoundError,
    Parameter,
    ParameterError,
    RunHandle,
    Runner,
    events,
    step,
)

MAX_RUNS = int(os.environ.get("MAX_RUNS", "4"))
START_WAIT = float(os.environ.get("START_WAIT", "5"))  # seconds a POST waits for a slot
MAX_N = 10_000  # the widest run a request may ask for: validate what users send
GRACE = 2  # seconds uvicorn gives open responses (event streams) when it stops


class CountFlow(FlowSpec):
    """Counts to n, one foreach task per number, each taking `pause` seconds."""

    n = Parameter("n", default=10)
    pause = Parameter("pause", default=0.1)

    @step
    def start(self) -> None:
        self.numbers = list(range(1, self.n + 1))
        self.next(self.count, foreach="numbers")

    @step
    def count(self) -> None:
        time.sleep(self.pause)
        print(f"counted {self.input}")
        self.square = self.input**2
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.total = sum(i.square for i in inputs)
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # The Runner lives as long as the app: its runs are tasks of the app, not of a request.
    with anyio.CancelScope() as shutdown:
        async with Runner(max_runs=MAX_RUNS) as runner:
            app.state.runner = runner
            yield
            # The server is stopping: cancel the runs still going (each is recorded
            # "cancelled" and can be resumed) rather than wait for them.
            shutdown.cancel()


app = FastAPI(title="asyncflow web service", lifespan=lifespan)


def handle_of(request: Request, run_id: str) -> RunHandle:
    try:
        handle: RunHandle = request.app.state.runner.get(run_id)
    except NotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    return handle


def describe(handle: RunHandle) -> dict[str, str]:
    return {"run_id": handle.run_id, "flow": handle.flow_name, "status": handle.status}


@app.post("/runs", status_code=201)
async def start_run(
    request: Request, params: Annotated[dict[str, Any] | None, Body()] = None
) -> dict[str, str]:
    """Start a run with these parameters; answer once it is recorded, with its id."""
    n = (params or {}).get("n", 10)
    if not isinstance(n, int) or not 1 <= n <= MAX_N:
        raise HTTPException(422, f"n must be a whole number from 1 to {MAX_N}, not {n!r}")
    handle: RunHandle | None = None
    with anyio.move_on_after(START_WAIT):  # a full runner: don't hold the request forever
        try:
            handle = await request.app.state.runner.start(CountFlow, **(params or {}))
        except ParameterError as exc:
            raise HTTPException(422, str(exc)) from None
    if handle is None:
        raise HTTPException(503, f"{MAX_RUNS} runs are going on; try again later")
    return describe(handle)


@app.get("/runs/{run_id}")
async def run_status(request: Request, run_id: str) -> dict[str, str]:
    """The run's status: running, succeeded, failed or cancelled."""
    return describe(handle_of(request, run_id))


@app.get("/runs/{run_id}/events", response_model=None)
async def run_events(
    request: Request, run_id: str, last_event_id: Annotated[int, Header(ge=0)] = 0
) -> StreamingResponse | Response:
    """The run's events as server-sent events, from its first to run_finished; a client
    that reconnects with a Last-Event-ID header (a browser's EventSource does) gets those
    after it."""
    handle = handle_of(request, run_id)
    stream = handle.events(after=last_event_id)
    first = None
    if handle.done:  # the run has ended: is there anything after last_event_id?
        first = await anext(stream, None)
        if first is None:  # no: 204 tells an EventSource to stop reconnecting
            return Response(status_code=204)

    async def messages() -> AsyncIterator[str]:
        if first is not None:
            yield message(first)
        async for ev in stream:
            yield message(ev)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(messages(), media_type="text/event-stream", headers=headers)


def message(ev: events.Event) -> str:
    """One server-sent event: its id is the seq, its event name the kind."""
    return f"id: {ev.seq}\nevent: {ev.kind}\ndata: {json.dumps(ev.to_dict())}\n\n"


@app.delete("/runs/{run_id}")
async def cancel_run(request: Request, run_id: str) -> dict[str, str]:
    """Cancel the run; answer once its cancellation is recorded."""
    handle = handle_of(request, run_id)
    await handle.cancel()
    return describe(handle)


if __name__ == "__main__":
    import uvicorn

    port = int(os.environ.get("PORT", "8000"))
    uvicorn.run(app, host="127.0.0.1", port=port, timeout_graceful_shutdown=GRACE)
