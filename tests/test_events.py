"""A run's events: the live stream (``flow.stream()``, the hub's readers) and the stored one
(``run.events()``, ``run.aevents(follow=True)``), in real stores and real processes.

Promises: every run records its events, in order and complete, with seq 1, 2, 3 ...;
readers each go at their own pace and one that never reads costs the run nothing; leaving a
stream early cancels the run (resumable); the stored stream equals the live one, survives
export and import, goes with its run in gc, and a hostile events row is a clear error.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import msgpack
import pytest

import asyncflow
from asyncflow import Flow, StoreError, events
from asyncflow._runtime._events import FLUSH_SECONDS, RunEvents
from asyncflow._runtime._log_lines import LINE_BURST, LINE_RATE
from asyncflow._store._manifest import content_digest
from tests.flows.event_flows import Caught, Chatty, Retried, Split, Wide

pytestmark = pytest.mark.anyio

FLOWS = Path(__file__).parent / "flows" / "event_flows.py"


async def live(flow: Any, **params: Any) -> list[events.Event]:
    async with flow.stream(**params) as stream:
        return [ev async for ev in stream]


def check_seqs(evs: list[events.Event]) -> None:
    assert [ev.seq for ev in evs] == list(range(1, len(evs) + 1))
    assert isinstance(evs[0], events.RunStarted)
    assert isinstance(evs[-1], events.RunFinished)
    assert sum(isinstance(ev, events.RunFinished) for ev in evs) == 1


def tasks_of(evs: list[events.Event], kind: type[events.Event]) -> list[Any]:
    return [ev for ev in evs if isinstance(ev, kind)]


def table_count(path: str, sql: str, *args: Any) -> int:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return int(conn.execute(sql, args).fetchone()[0])


# --- 1. order and completeness --------------------------------------------------------------


async def test_a_foreach_streams_every_task_started_then_finished_and_its_progress(
    store: str,
) -> None:
    evs = await live(Wide(store=store, echo=False), n=30)
    check_seqs(evs)
    started = tasks_of(evs, events.TaskStarted)
    finished = tasks_of(evs, events.TaskFinished)
    assert Counter(ev.step for ev in finished) == {"start": 1, "work": 30, "join": 1, "end": 1}
    assert sorted(ev.pathspec for ev in started) == sorted(ev.pathspec for ev in finished)
    seq_of = {ev.pathspec: ev.seq for ev in started}
    assert all(seq_of[ev.pathspec] < ev.seq for ev in finished)
    assert sorted(ev.index for ev in started if ev.step == "work") == list(range(30))
    assert {ev.index for ev in started if ev.step != "work"} == {None}
    assert all(ev.status == "succeeded" and ev.attempt == 0 for ev in finished)
    assert {ev.artifacts for ev in finished if ev.step == "work"} == {("out",)}
    assert [ev.artifacts for ev in finished if ev.step == "start"] == [("items",)]
    lines = tasks_of(evs, events.LogLine)
    assert sorted(ev.text for ev in lines) == sorted(f"item {i}" for i in range(30))
    assert {ev.stream for ev in lines} == {"stdout"}
    progress = tasks_of(evs, events.StepProgress)
    assert progress and {ev.step for ev in progress} == {"work"}
    last = progress[-1]
    assert (last.done, last.failed, last.total) == (30, 0, 30)
    join_start = next(ev.seq for ev in started if ev.step == "join")
    assert last.seq < join_start  # the progress that completes the step is not held back
    run_end = evs[-1]
    assert run_end.status == "succeeded" and run_end.run == f"Wide/{run_end.run_id}"


async def test_a_foreach_publishes_its_width_before_any_task_of_its_body_ends(
    store: str,
) -> None:
    evs = await live(Wide(store=store, echo=False), n=30, pause=0.05)
    first = tasks_of(evs, events.StepProgress)[0]
    assert (first.step, first.done, first.failed, first.total) == ("work", 0, 0, 30)
    work = [ev for ev in evs if getattr(ev, "step", None) == "work" and ev is not first]
    assert first.seq < min(ev.seq for ev in work)  # before any of its tasks even starts
    split = next(ev for ev in tasks_of(evs, events.TaskFinished) if ev.step == "start")
    assert split.seq < first.seq
    # Stored like the others: the persisted stream is the live one.
    assert Flow("Wide", store=store)[first.run_id].events() == evs


async def test_a_split_streams_both_branches_before_the_join(store: str) -> None:
    evs = await live(Split(store=store, echo=False))
    check_seqs(evs)
    finished = {ev.step: ev for ev in tasks_of(evs, events.TaskFinished)}
    assert set(finished) == {"start", "left", "right", "join", "end"}
    assert finished["join"].seq > max(finished["left"].seq, finished["right"].seq)
    assert finished["left"].artifacts == ("l_value",)
    assert not tasks_of(evs, events.StepProgress)
    [line] = tasks_of(evs, events.LogLine)
    assert (line.stream, line.text, line.pathspec) == (
        "stderr",
        "left says hi",
        finished["left"].pathspec,
    )


async def test_a_failure_with_retry_streams_the_retry_then_the_failure(
    store: str, tmp_path: Path
) -> None:
    evs = await live(Retried(store=store, echo=False), marker=str(tmp_path / "m"))
    check_seqs(evs)
    retrying = tasks_of(evs, events.TaskRetrying)
    assert [(ev.step, ev.attempt) for ev in retrying] == [("flaky", 0), ("doomed", 0)]
    assert retrying[0].error == "RuntimeError: first attempt fails"
    started = [(ev.step, ev.attempt) for ev in tasks_of(evs, events.TaskStarted)]
    assert started == [("start", 0), ("flaky", 0), ("flaky", 1), ("doomed", 0), ("doomed", 1)]
    finished = {ev.step: ev for ev in tasks_of(evs, events.TaskFinished)}
    assert (finished["flaky"].status, finished["flaky"].attempt) == ("succeeded", 1)
    assert (finished["doomed"].status, finished["doomed"].attempt) == ("failed", 1)
    assert "end" not in finished
    assert evs[-1].status == "failed" and "never works" in (evs[-1].error or "")


async def test_a_caught_failure_is_a_task_finished_caught(store: str) -> None:
    evs = await live(Caught(store=store, echo=False))
    statuses = {ev.step: ev.status for ev in tasks_of(evs, events.TaskFinished)}
    assert statuses == {"start": "succeeded", "risky": "caught", "end": "succeeded"}
    assert evs[-1].status == "succeeded"


async def test_every_event_is_json_ready_with_seq_kind_run_id_and_at(store: str) -> None:
    evs = await live(Retried(store=store, echo=False), marker=str(Path(store).parent / "m"))
    for ev in evs:
        data = json.loads(json.dumps(ev.to_dict()))
        assert data["seq"] == ev.seq and data["kind"] == ev.kind and data["run_id"] == ev.run_id
        assert data["at"] == ev.at.isoformat() and ev.at.tzinfo is not None


# --- 2. readers ---------------------------------------------------------------------------------


async def test_two_readers_see_the_same_stream_each_at_its_own_pace(store: str) -> None:
    hub = RunEvents()
    fast, slow = hub.reader(), hub.reader()
    seen: dict[str, list[events.Event]] = {"fast": [], "slow": []}

    async def read(name: str, reader: Any, pause: float) -> None:
        async for ev in reader:
            seen[name].append(ev)
            await anyio.sleep(pause)

    flow = Wide(store=store, echo=False)
    async with anyio.create_task_group() as tg:
        tg.start_soon(read, "fast", fast, 0)
        tg.start_soon(read, "slow", slow, 0.002)
        await flow._af_execute({"n": 40}, events=hub)
    assert seen["fast"] == seen["slow"]
    check_seqs(seen["fast"])


async def test_a_reader_that_never_reads_does_not_hold_the_run_or_its_memory(
    store: str,
) -> None:
    hub = RunEvents(memory=50)
    idle = hub.reader()  # never read while the run goes on
    run = await Wide(store=store, echo=False)._af_execute({"n": 200}, events=hub)
    assert run.status == "succeeded"
    assert len(hub._log) < 100  # the log kept at most 2 x memory items
    late = [ev async for ev in idle]  # the old ones come back from the store
    assert late == run.events()
    check_seqs(late)
    assert len(late) > 400


async def test_a_reader_made_after_every_earlier_one_is_gone_reads_the_whole_stream(
    store: str,
) -> None:
    # While no reader is alive the hub keeps no log (and does no work for one); the next
    # reader starts the log afresh and reads what came before from the store.
    hub = RunEvents(memory=50)
    seen: list[events.Event] = []

    async def read_some_then_another() -> None:
        first = hub.reader()
        async for ev in first:
            if ev.seq >= 20:
                break
        del first
        gc.collect()
        assert not hub._readers
        await anyio.sleep(0.2)  # the run goes on with no reader
        async for ev in hub.reader():
            seen.append(ev)

    async with anyio.create_task_group() as tg:
        tg.start_soon(read_some_then_another)
        run = await Wide(store=store, echo=False)._af_execute({"n": 60, "pause": 0.01}, events=hub)
    check_seqs(seen)
    assert seen == run.events()


async def test_stepprogress_is_rate_limited_and_its_last_one_is_complete(store: str) -> None:
    started = time.monotonic()
    evs = await live(Wide(store=store, echo=False), n=1000)
    took = time.monotonic() - started
    progress = tasks_of(evs, events.StepProgress)
    # At most 10 a second, and three more: the split's (0 done), and the first and the last
    # of the finishing tasks, which are never held back.
    assert len(progress) <= took * 10 + 3, (len(progress), took)
    assert (progress[-1].done, progress[-1].failed, progress[-1].total) == (1000, 0, 1000)
    assert all(ev.total == 1000 for ev in progress)


async def test_a_task_printing_a_million_lines_streams_a_bounded_number(store: str) -> None:
    started = time.monotonic()
    evs = await live(Chatty(store=store, echo=False), lines=1_000_000)
    took = time.monotonic() - started
    lines = tasks_of(evs, events.LogLine)
    # 1,000 at once, then 100 a second, and a note of those left out once a second.
    assert LINE_BURST <= len(lines) <= LINE_BURST + (LINE_RATE + 1) * took + 3
    assert lines[0].text == "line 0"
    assert any("line(s) not streamed" in ev.text for ev in lines)
    assert lines[-1].text == "no newline at the end" or "not streamed" in lines[-1].text
    run = Flow("Chatty", store=store)[evs[-1].run_id]
    assert run["start"].task.stdout.count("\n") == 1_000_000  # all of it is stored
    # Each event row is one writer batch, not one line.
    rows = table_count(store, "SELECT count(*) FROM events WHERE run_id = ?", int(run.id))
    assert rows <= took / FLUSH_SECONDS + 10


# --- 3. leaving early ---------------------------------------------------------------------------


async def test_leaving_the_stream_block_early_cancels_the_run_and_resume_completes(
    store: str,
) -> None:
    async with Wide(store=store, echo=False).stream(n=50, pause=0.01) as stream:
        async for ev in stream:
            if isinstance(ev, events.TaskFinished) and ev.step == "work":
                run_id = ev.run_id
                break
    run = Flow("Wide", store=store)[run_id]
    assert run.status == "cancelled"  # recorded before the block was left
    stored = run.events()
    assert stored[-1].status == "cancelled"
    check_seqs(stored)
    resumed = await Wide(store=store, echo=False).resume(run_id)
    assert resumed.status == "succeeded" and resumed.data.total == 50 * 49
    clones = tasks_of(resumed.events(), events.TaskFinished)
    assert len(clones) == 53


async def test_aclose_of_a_bare_stream_cancels_the_run_before_it_returns(store: str) -> None:
    stream = Wide(store=store, echo=False).stream(n=50, pause=0.01)
    async for ev in stream:
        if isinstance(ev, events.TaskStarted):
            break
    await stream.aclose()
    assert Flow("Wide", store=store)[ev.run_id].status == "cancelled"
    async with contextlib.aclosing(Wide(store=store, echo=False).stream(n=50)) as again:
        first = await again.__anext__()
    assert Flow("Wide", store=store)[first.run_id].status == "cancelled"


async def test_a_bare_async_for_left_by_break_cancels_the_run(store: str) -> None:
    async for ev in Wide(store=store, echo=False).stream(n=200, pause=0.01):
        if isinstance(ev, events.TaskStarted):
            break
    with anyio.fail_after(10):
        while Flow("Wide", store=store)[ev.run_id].status == "running":
            await anyio.sleep(0.01)
    assert Flow("Wide", store=store)[ev.run_id].status == "cancelled"


async def test_a_bad_parameter_is_raised_by_the_stream(store: str) -> None:
    with pytest.raises(asyncflow.ParameterError):
        async for _ in Wide(store=store, echo=False).stream(nope=1):
            pass
    with pytest.raises(asyncflow.ParameterError):
        async with Wide(store=store, echo=False).stream(nope=1) as stream:
            async for _ in stream:
                pass


# --- 4. the stored stream -----------------------------------------------------------------------


async def test_the_stored_stream_equals_the_live_one(store: str, tmp_path: Path) -> None:
    for flow, params in (
        (Wide(store=store, echo=False), {"n": 25}),
        (Retried(store=store, echo=False), {"marker": str(tmp_path / "m")}),
        (Split(store=store, echo=False), {}),
    ):
        evs = await live(flow, **params)
        run = Flow(type(flow).__name__, store=store)[evs[-1].run_id]
        assert run.events() == evs
        assert [ev async for ev in run.aevents()] == evs
        assert [ev async for ev in run.aevents(follow=True)] == evs


async def test_runs_started_with_run_and_from_the_command_line_record_events(
    store: str,
) -> None:
    run = await Wide(store=store, echo=False).run(n=3)
    check_seqs(run.events())
    done = subprocess.run(
        [sys.executable, str(FLOWS), "run", "--store", store, "--n", "2", "--pause", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    [cli_run] = Flow("SlowFlow", store=store).runs()
    evs = cli_run.events()
    check_seqs(evs)
    assert sorted(ev.text for ev in tasks_of(evs, events.LogLine)) == ["tick 0", "tick 1"]


async def test_following_a_run_of_another_process_sees_every_event_as_it_comes(
    store: str,
) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(FLOWS), "run", "--store", store, "--n", "6", "--pause", "0.15"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        with anyio.fail_after(60):
            while not os.path.exists(store) or not _runs(store):
                await anyio.sleep(0.02)
            run = Flow("SlowFlow", store=store).runs()[0]
            assert run.status == "running"
            got: list[events.Event] = []
            arrived: list[float] = []
            async for ev in run.aevents(follow=True):
                got.append(ev)
                arrived.append(time.time())
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
    check_seqs(got)
    assert got == run.refresh().events()
    ticks = [i for i, ev in enumerate(got) if isinstance(ev, events.TaskFinished)]
    lags = sorted(arrived[i] - got[i].at.timestamp() for i in ticks)
    assert lags[len(lags) // 2] < 1.0  # seen while the run went on, not at its end


async def test_following_ends_when_the_run_is_found_crashed(store: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(FLOWS), "run", "--store", store, "--n", "2", "--pause", "0",
         "--hang", "600"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        with anyio.fail_after(60):
            while not os.path.exists(store) or not _joined(store):
                await anyio.sleep(0.05)
            run = Flow("SlowFlow", store=store).runs()[0]
            got: list[events.Event] = []

            async def follow() -> None:
                async for ev in run.aevents(follow=True):
                    got.append(ev)

            async with anyio.create_task_group() as tg:
                tg.start_soon(follow)
                await anyio.sleep(0.5)
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert run.refresh().status == "crashed"
    assert got and not isinstance(got[-1], events.RunFinished)
    assert any(isinstance(ev, events.TaskStarted) and ev.step == "join" for ev in got)


def _runs(store: str) -> bool:
    try:
        return table_count(store, "SELECT count(*) FROM runs") > 0
    except sqlite3.Error:
        return False


def _joined(store: str) -> bool:
    # The join task has started (its TaskStarted is stored, at most FLUSH_SECONDS late).
    try:
        runs = Flow("SlowFlow", store=store).runs()
    except Exception:
        return False
    return bool(runs) and any(
        isinstance(ev, events.TaskStarted) and ev.step == "join" for ev in runs[0].events()
    )


# --- 5. archives and gc -------------------------------------------------------------------------


async def test_events_travel_in_archives_and_survive_import(store: str, tmp_path: Path) -> None:
    evs = await live(Wide(store=store, echo=False), n=10)
    run = Flow("Wide", store=store)[evs[-1].run_id]
    archive = str(tmp_path / "runs.afa")
    run.export(archive)
    in_archive = Flow("Wide", store=archive)[run.id]
    assert in_archive.events() == evs
    target = str(tmp_path / "other.db")
    await Wide(store=target, echo=False).run(n=1)  # so the imported run gets another id
    [imported] = asyncflow.import_archive(archive, store=target)
    assert imported.id != run.id

    def same(ev: events.Event) -> dict[str, Any]:
        data = ev.to_dict()
        for key in ("run_id", "run", "pathspec"):
            data.pop(key, None)
        return data

    assert [same(ev) for ev in imported.events()] == [same(ev) for ev in evs]
    assert imported.events()[-1].run == f"Wide/{imported.id}"


async def test_gc_deletes_a_runs_events_with_it(store: str) -> None:
    first = await Wide(store=store, echo=False).run(n=5)
    await Wide(store=store, echo=False).run(n=5)
    assert table_count(store, "SELECT count(*) FROM events WHERE run_id = ?", int(first.id))
    report = asyncflow.gc(store=store, keep_last=1)
    assert list(report.deleted) == [f"Wide/{first.id}"]
    assert table_count(store, "SELECT count(*) FROM events WHERE run_id = ?", int(first.id)) == 0
    assert table_count(store, "SELECT count(*) FROM events") > 0


# --- 6. hostile rows ----------------------------------------------------------------------------


def _rewrite_events(path: str, data: bytes, *, seq: int | None = None) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        first = conn.execute("SELECT run_id, seq FROM events ORDER BY run_id, seq").fetchone()
        conn.execute(
            "UPDATE events SET data = ?, seq = ? WHERE run_id = ? AND seq = ?",
            (data, first[1] if seq is None else seq, *first),
        )


def _redigest(path: str) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        (text,) = conn.execute("SELECT value FROM store_info WHERE key = 'archive'").fetchone()
        manifest = json.loads(text)
        manifest["digest"] = content_digest(conn, manifest=manifest)
        conn.execute(
            "UPDATE store_info SET value = ? WHERE key = 'archive'", (json.dumps(manifest),)
        )


HOSTILE = {
    "not msgpack": b"\xc1\xc1\xc1",
    "not a list": msgpack.packb({"a": 1}),
    "an unknown kind": msgpack.packb([0, [99, 0, "x"]]),
    "a wrong type": msgpack.packb([0, [3, 0, "work", "2", "succeeded", 1, [], 0]]),
    "a bad status": msgpack.packb([0, [7, 0, "exploded", None]]),
    "a time out of range": msgpack.packb([2**62, [7, 0, "succeeded", None]]),
    "an ext type": msgpack.packb([0, [7, msgpack.ExtType(5, b"x"), "succeeded", None]]),
    "deep nesting": b"\x91" * 100_000,
    "bad utf-8": b"\x92\x00\x94\x07\x00\xa2\xff\xfe\xc0",
    "a negative count": msgpack.packb([0, [6, 0, "work", -1, 0, 3]]),
}


@pytest.mark.parametrize("what", sorted(HOSTILE))
async def test_a_hostile_events_row_in_an_archive_is_refused_clearly(
    store: str, tmp_path: Path, what: str
) -> None:
    await Wide(store=store, echo=False).run(n=2)
    archive = str(tmp_path / "runs.afa")
    Flow("Wide", store=store).latest_run.export(archive)
    _rewrite_events(archive, HOSTILE[what])
    _redigest(archive)
    for attempt in (
        lambda: Flow("Wide", store=archive).latest_run.events(),
        lambda: asyncflow.import_archive(archive, store=str(tmp_path / "t.db")),
        lambda: asyncflow.read_archive(archive, verify=True),
    ):
        with pytest.raises(StoreError, match="its events are not ones asyncflow writes"):
            attempt()


async def test_overlapping_events_rows_in_an_archive_are_refused(
    store: str, tmp_path: Path
) -> None:
    run = await Wide(store=store, echo=False).run(n=2)
    archive = str(tmp_path / "runs.afa")
    run.export(archive)
    with contextlib.closing(sqlite3.connect(archive)) as conn, conn:
        (data,) = conn.execute("SELECT data FROM events ORDER BY seq LIMIT 1").fetchone()
        conn.execute("INSERT INTO events VALUES (?, 2, ?)", (int(run.id), data))
    _redigest(archive)
    with pytest.raises(StoreError, match=r"its events are not ones .* overlap at seq 2"):
        Flow("Wide", store=archive)[run.id].events()


async def test_overlapping_events_rows_in_a_store_are_a_store_error(store: str) -> None:
    run = await Wide(store=store, echo=False).run(n=2)
    with contextlib.closing(sqlite3.connect(store)) as conn, conn:
        (data,) = conn.execute("SELECT data FROM events ORDER BY seq LIMIT 1").fetchone()
        conn.execute("INSERT INTO events VALUES (?, 2, ?)", (int(run.id), data))
    with pytest.raises(StoreError, match=r"a record holds .* overlap at seq"):
        run.events()


@pytest.mark.parametrize("what", sorted(HOSTILE))
async def test_a_hostile_events_row_in_a_store_is_a_store_error_for_every_reader(
    store: str, what: str
) -> None:
    run = await Wide(store=store, echo=False).run(n=2)
    _rewrite_events(store, HOSTILE[what])
    with pytest.raises(StoreError, match="a record holds a value asyncflow never writes"):
        run.events()
    with pytest.raises(StoreError, match="a record holds a value asyncflow never writes"):
        [ev async for ev in run.aevents(follow=True)]
    assert run.data.total == 2  # the rest of the run reads as before


async def test_a_changed_but_well_formed_event_in_an_archive_breaks_its_digest(
    store: str, tmp_path: Path
) -> None:
    evs = await live(Retried(store=store, echo=False), marker=str(tmp_path / "m"))
    assert evs[-1].status == "failed"
    archive = str(tmp_path / "runs.afa")
    Flow("Retried", store=store)[evs[-1].run_id].export(archive)
    with contextlib.closing(sqlite3.connect(archive)) as conn, conn:
        seq, data = conn.execute("SELECT seq, data FROM events ORDER BY seq DESC").fetchone()
        body = msgpack.unpackb(data)
        assert body[-1][0] == 7 and body[-1][2] == "failed"
        body[-1][2] = "succeeded"  # the run "succeeded": a valid event, a forged record
        conn.execute("UPDATE events SET data = ? WHERE seq = ?", (msgpack.packb(body), seq))
    with pytest.raises(StoreError, match="do not match the digest"):
        Flow("Retried", store=archive)[evs[-1].run_id].events()


async def test_a_task_finished_is_committed_with_its_task_row_never_apart(store: str) -> None:
    import threading

    from asyncflow._store._event_reads import event_items
    from asyncflow._store._events import TASK_FINISHED
    from asyncflow._store._plans import Query

    await Wide(store=store, echo=False).run(n=1)  # the file exists for the watcher
    stop = threading.Event()
    apart: list[tuple[set[int], set[int]]] = []
    looks = [0]

    def watch() -> None:
        conn = sqlite3.connect(store, isolation_level=None)
        try:
            while not stop.is_set():
                conn.execute("BEGIN")
                rows = {r[0] for r in conn.execute("SELECT id FROM tasks WHERE run_id = 2")}
                plan = event_items(2)
                query: Query = next(plan)
                try:
                    plan.send(conn.execute(query.sql, query.params).fetchall())
                except StopIteration as done:
                    items = done.value
                conn.execute("ROLLBACK")
                finished = {it[4] for it in items if it[1] == TASK_FINISHED}
                looks[0] += 1
                if rows != finished:
                    apart.append((rows, finished))
        finally:
            conn.close()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        await Wide(store=store, echo=False).run(n=300, pause=0.002)
    finally:
        stop.set()
        watcher.join()
    assert looks[0] > 10
    assert not apart, apart[0]


def test_the_readme_stream_snippet_runs_and_prints_progress_and_the_end(tmp_path: Path) -> None:
    import re

    root = Path(__file__).resolve().parents[1]
    blocks = re.findall(r"```python\n(.*?)```", (root / "README.md").read_text(), re.DOTALL)
    [block] = [b for b in blocks if ".stream(epochs=50)" in b]
    body = "\n".join("    " + line for line in block.splitlines())
    code = f"import asyncio\nfrom quickstart import TrainFlow\nasync def main():\n{body}\n"
    code += "asyncio.run(main())\n"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "examples"), str(root)])}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "succeeded TrainFlow/1" in lines
    progress = [line for line in lines if re.fullmatch(r"train \d+/\d+", line)]
    assert progress and progress[-1].split()[1].split("/")[0] == progress[-1].split("/")[1]


async def test_a_reader_that_joins_a_live_run_late_reads_the_past_then_follows(
    store: str,
) -> None:
    # No reader at first: the hub keeps no log, so the late reader gets what came before
    # from the store (events still waiting for the writer are handed over first).
    hub = RunEvents()
    seen: list[events.Event] = []

    async def late() -> None:
        await anyio.sleep(0.3)
        async for ev in hub.reader():
            seen.append(ev)

    async with anyio.create_task_group() as tg:
        tg.start_soon(late)
        run = await Wide(store=store, echo=False)._af_execute({"n": 40, "pause": 0.02}, events=hub)
    check_seqs(seen)
    assert seen == run.events()
    assert not hub._log or len(hub._log) < len(seen)


def test_a_batch_packed_at_once_reads_back_the_same_in_rows_that_fit_a_page() -> None:
    # The writer packs each row in one msgpack buffer (cutting a big batch into pieces of
    # equal counts): the rows must read back as the same items (no row across a gap in the
    # seqs), stay under CHUNK_BYTES but for one event, and a batch that fits one row must be
    # the very bytes of the event-by-event encoding.
    import random

    from asyncflow._store._events import (
        CHUNK_BYTES,
        LOG_LINE,
        TASK_FINISHED,
        TASK_STARTED,
        decode_chunk,
        encode_chunks,
        encode_rows,
    )

    rng = random.Random(12)
    t = 1_764_000_000_000_000
    shapes = set()
    for _ in range(300):
        items: list[tuple[Any, ...]] = []
        seq = rng.randrange(1, 1000)
        for _ in range(rng.randrange(1, 700)):
            seq += 1 if rng.random() > 0.01 else rng.randrange(2, 5)  # now and then a gap
            t += rng.randrange(0, 3000)
            kind = rng.random()
            if kind < 0.45:
                items.append((seq, TASK_STARTED, t, "work", seq, seq % 7, 0))
            elif kind < 0.95:
                items.append((seq, TASK_FINISHED, t, "work", seq, "succeeded", 90, ("out",), 0))
            else:
                text = "x" * rng.choice([0, 10, 500, 4096])
                items.append((seq, LOG_LINE, t, "work", seq, 0, text))
        rows = encode_chunks(items)
        assert [it for s, d in rows for it in decode_chunk(s, d)] == items
        assert all(len(d) < CHUNK_BYTES + 4200 for _, d in rows)
        one_by_one = encode_rows(items)
        if len(one_by_one) == 1:
            assert rows == one_by_one
        shapes.add(len(rows) > 1)
    assert shapes == {True, False}  # both one-row and several-row batches were tried
