"""examples/web_service.py end to end: real uvicorn in a subprocess on a free 127.0.0.1 port,
driven with httpx: start a run, read its status, read its server-sent events to run_finished,
cancel a long run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asyncflow import Flow

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
READY_SECONDS = 30.0
TIMEOUT = httpx.Timeout(30.0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[str, str, subprocess.Popen[bytes]]]:
    """The example served by uvicorn; yields (base URL, store path, its process)."""
    store = str(tmp_path / "web.db")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "ASYNCFLOW_STORE"}
    env |= {"ASYNCFLOW_STORE": store, "MAX_RUNS": "2", "START_WAIT": "0.5"}
    argv = [sys.executable, "-m", "uvicorn", "web_service:app", "--app-dir", str(EXAMPLES)]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    argv += ["--timeout-graceful-shutdown", "2"]  # as the README serves it
    log = (tmp_path / "uvicorn.log").open("w")
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_SECONDS
        while True:  # ready once it answers (a 404 for a run it never started)
            assert proc.poll() is None, (tmp_path / "uvicorn.log").read_text()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/runs/0", timeout=1.0).status_code == 404:
                    break
            assert time.monotonic() < deadline, "the service did not come up"
            time.sleep(0.05)
        yield base, store, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def read_sse(client: Any, url: str, last_id: int | None = None) -> list[dict[str, Any]]:
    """The data of every server-sent event of ``url``, read until run_finished."""
    out: list[dict[str, Any]] = []
    headers = {} if last_id is None else {"Last-Event-ID": str(last_id)}
    with client.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        for line in response.iter_lines():
            if line:
                name, _, value = line.partition(": ")
                fields[name] = value
                continue
            data = json.loads(fields["data"])
            assert (fields["event"], int(fields["id"])) == (data["kind"], data["seq"])
            out.append(data)
            fields = {}
            if data["kind"] == "run_finished":
                break
    return out


def test_the_web_service_starts_reports_streams_and_cancels_runs(
    service: tuple[str, str, subprocess.Popen[bytes]],
) -> None:
    base, store, proc = service
    with httpx.Client(base_url=base, timeout=TIMEOUT) as client:
        created = client.post("/runs", json={"n": 8, "pause": 0.05})
        assert created.status_code == 201, created.text
        run_id = created.json()["run_id"]
        assert created.json()["flow"] == "CountFlow"
        assert client.get(f"/runs/{run_id}").json()["status"] in ("running", "succeeded")

        streamed = read_sse(client, f"/runs/{run_id}/events")
        assert [ev["seq"] for ev in streamed] == list(range(1, len(streamed) + 1))
        assert streamed[0]["kind"] == "run_started"
        assert streamed[-1]["kind"] == "run_finished"
        assert streamed[-1]["status"] == "succeeded"
        progress = [ev for ev in streamed if ev["kind"] == "step_progress"]
        assert (progress[-1]["done"], progress[-1]["total"]) == (8, 8)
        assert client.get(f"/runs/{run_id}").json()["status"] == "succeeded"
        run = Flow("CountFlow", store=store)[run_id]
        assert run.data.total == sum(i * i for i in range(1, 9))
        stored = [json.loads(json.dumps(ev.to_dict())) for ev in run.events()]
        assert streamed == stored  # the SSE stream is the run's whole stream
        # A client reconnecting with Last-Event-ID gets the events after it, none twice;
        # after run_finished, a 204, which stops an EventSource reconnecting.
        assert read_sse(client, f"/runs/{run_id}/events", last_id=3) == streamed[3:]
        refused = client.get(f"/runs/{run_id}/events", headers={"Last-Event-ID": "x"})
        assert refused.status_code == 422
        last = str(streamed[-1]["seq"])
        after_end = client.get(f"/runs/{run_id}/events", headers={"Last-Event-ID": last})
        assert after_end.status_code == 204 and after_end.content == b""
        # A client reconnecting with Last-Event-ID gets the events after it, none twice.
        resumed = read_sse(client, f"/runs/{run_id}/events", last_id=3)
        assert resumed == streamed[3:]
        refused = client.get(f"/runs/{run_id}/events", headers={"Last-Event-ID": "x"})
        assert refused.status_code == 422

        # A long run, cancelled from another request; a second reader sees it end cancelled.
        long_id = client.post("/runs", json={"n": 200, "pause": 0.2}).json()["run_id"]
        cancelled = client.delete(f"/runs/{long_id}")
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "cancelled"
        assert client.get(f"/runs/{long_id}").json()["status"] == "cancelled"
        assert Flow("CountFlow", store=store)[long_id].status == "cancelled"
        tail = read_sse(client, f"/runs/{long_id}/events")
        assert tail[-1]["kind"] == "run_finished" and tail[-1]["status"] == "cancelled"

        bad = client.post("/runs", json={"nope": 1})
        assert bad.status_code == 422 and "nope" in bad.json()["detail"]
        huge = client.post("/runs", json={"n": 10**10})
        assert huge.status_code == 422 and "from 1 to 10000" in huge.json()["detail"]
        missing = client.get("/runs/999")
        assert missing.status_code == 404 and "has no run" in missing.json()["detail"]

        # MAX_RUNS (2) runs going on: a third start waits START_WAIT (0.5 s), then 503.
        going = [client.post("/runs", json={"n": 2, "pause": 8}).json() for _ in range(2)]
        busy = client.post("/runs", json={"n": 1})
        assert busy.status_code == 503, busy.text
        assert [client.get(f"/runs/{r['run_id']}").json()["status"] for r in going] == [
            "running",
            "running",
        ]

    # A client follows one of them while the server stops, reading on (as a browser does).
    watcher = httpx.Client(base_url=base, timeout=TIMEOUT)
    lines: list[str] = []

    def follow() -> None:
        url = f"/runs/{going[0]['run_id']}/events"
        with contextlib.suppress(httpx.HTTPError), watcher.stream("GET", url) as response:
            lines.extend(response.iter_lines())

    reading = threading.Thread(target=follow, daemon=True)
    reading.start()
    deadline = time.monotonic() + 10
    while not lines:
        assert time.monotonic() < deadline, "the event stream did not start"
        time.sleep(0.02)

    # Stopping the server cancels the runs still going, watched or not: recorded, resumable.
    # (uvicorn closes the open event stream after its 2 s graceful-shutdown timeout; the
    # process itself ends once the plain steps' threads return from their 8 s sleep, long
    # enough that no run ends by itself first, even on a loaded machine.)
    proc.send_signal(signal.SIGINT)
    with Flow("CountFlow", store=store) as flow:
        deadline = time.monotonic() + 2 + 4
        while {flow[r["run_id"]].status for r in going} == {"running"}:
            assert time.monotonic() < deadline, "stopping the server did not cancel its runs"
            time.sleep(0.02)
        assert proc.wait(timeout=30) == 0
        assert [flow[r["run_id"]].status for r in going] == ["cancelled", "cancelled"]
        assert len(flow.runs()) == 4  # the refused starts recorded nothing
    reading.join(timeout=30)
    watcher.close()
