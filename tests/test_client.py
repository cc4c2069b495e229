"""The client, sync forms: Flow, Run, Step, Task, DataView, DataArtifact on real store files."""

from __future__ import annotations

import os
import pickle
import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from asyncflow import (
    ArtifactNotFoundError,
    NotFoundError,
    StoreError,
    StoreFormatError,
    UntrustedArtifactError,
)
from asyncflow._client import DataArtifact, DataView, Flow, Run, Step, Task, list_flows
from asyncflow._store import _queries
from asyncflow._store._blobs import CHUNK_SIZE

from ._storefixture import T0, Counted, T, execute, linear_graph, sha_of, write_run, writer

TRAIN_ORDER = [10, 2, 0, 11, 1, 3, 4, 5, 6, 7, 8, 9]  # written out of index order


def build_store(path: str) -> None:
    """Run 1 succeeded, 2 failed, 3 is another flow's, 4 is still running."""
    items = list(range(12))
    write_run(
        path,
        "TrainFlow",
        [
            T("start", artifacts={"items": items, "alpha": 0.1}),
            *(
                T(
                    "train",
                    str(i),
                    {"items": items, "alpha": 0.1, "score": i * 10},
                    stdout="hello\n" if i == 2 else None,
                )
                for i in TRAIN_ORDER
            ),
            T("join", artifacts={"alpha": 0.1, "total": 660}),
            T(
                "end",
                artifacts={
                    "alpha": 0.1,
                    "total": 660,
                    "arr": np.arange(6, dtype=np.float32).reshape(2, 3),
                    "obj": Counted(7),
                    "pair": (1, 2),
                },
            ),
        ],
        tags=["nightly"],
        params={"alpha": 0.1, "config": {"k": 1}},
    )
    write_run(
        path,
        "TrainFlow",
        [
            T("start", artifacts={"items": [0, 1]}),
            T("train", "0", {"items": [0, 1], "score": 0}),
            T(
                "train",
                "1",
                status="failed",
                stderr="oops\n",
                exception="ValueError: boom",
                traceback="Traceback (most recent call last):\nValueError: boom\n",
            ),
        ],
        status="failed",
        tags=["nightly", "exp"],
        graph=linear_graph("TrainFlow", ["start", "train", "join", "end"]),
        created_at=T0 + 100,
        finished_at=T0 + 130,
        error="step train failed",
    )
    write_run(path, "OtherFlow", [T("start"), T("end", artifacts={"x": 1})], created_at=T0 + 200)
    write_run(
        path,
        "TrainFlow",
        [T("start", artifacts={"items": []})],
        status="running",
        tags=["exp"],
        created_at=T0 + 300,
        finished_at=None,
        origin_run_id=2,
    )


@pytest.fixture
def path(store: str) -> str:
    build_store(store)
    return store


@pytest.fixture
def flow(path: str) -> Flow:
    return Flow("TrainFlow", store=path)


# --- Flow -------------------------------------------------------------------------------------


def test_flow_basics(flow: Flow, path: str) -> None:
    assert flow.name == "TrainFlow" == flow.pathspec
    assert flow.store == os.path.abspath(path)
    assert repr(flow) == "Flow('TrainFlow')"
    assert flow == Flow("TrainFlow", path)
    assert hash(flow) == hash(Flow("TrainFlow", path))


def test_unknown_flow_lists_the_flows(path: str) -> None:
    with pytest.raises(NotFoundError) as info:
        Flow("NoSuchFlow", store=path)
    assert isinstance(info.value, KeyError)
    message = str(info.value)
    assert "'NoSuchFlow'" in message and "OtherFlow, TrainFlow" in message


def test_empty_store_says_it_has_no_runs(store: str) -> None:
    with writer(store):
        pass
    with pytest.raises(NotFoundError, match="no runs yet"):
        Flow("TrainFlow", store=store)


def test_missing_store_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as info:
        Flow("TrainFlow", store=tmp_path / "absent.db")
    assert not isinstance(info.value, StoreFormatError)
    assert "absent.db" in str(info.value)


def test_foreign_sqlite_file_is_a_format_error(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreFormatError, match="another program"):
        Flow("TrainFlow", store=other)


def test_store_defaults_to_environment(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASYNCFLOW_STORE", path)
    assert Flow("TrainFlow").store == os.path.abspath(path)
    assert list_flows() == ["OtherFlow", "TrainFlow"]


def test_list_flows(path: str) -> None:
    assert list_flows(path) == ["OtherFlow", "TrainFlow"]


def test_runs_newest_first_with_filters(flow: Flow) -> None:
    assert [r.id for r in flow.runs()] == ["4", "2", "1"]
    assert [r.id for r in flow] == ["4", "2", "1"]
    assert [r.id for r in flow.runs(tag="nightly")] == ["2", "1"]
    assert [r.id for r in flow.runs("nightly", "exp")] == ["2"]
    assert [r.id for r in flow.runs("exp", tag="nightly")] == ["2"]
    assert [r.id for r in flow.runs(limit=2)] == ["4", "2"]
    assert flow.runs(tag="nope") == []


def test_latest_runs(flow: Flow, path: str) -> None:
    latest = flow.latest_run
    assert latest is not None and latest.id == "4"
    ok = flow.latest_successful_run
    assert ok is not None and ok.id == "1"
    write_run(path, "Lonely", [T("start")], status="failed")
    assert Flow("Lonely", path).latest_successful_run is None


def test_get_run_by_str_or_int(flow: Flow) -> None:
    assert flow["1"] == flow[1]
    assert flow["1"].pathspec == "TrainFlow/1"
    assert 1 in flow and "2" in flow
    assert 3 not in flow  # OtherFlow's run
    assert "x" not in flow


def test_missing_run_lists_recent_runs(flow: Flow) -> None:
    with pytest.raises(NotFoundError) as info:
        flow[99]
    assert isinstance(info.value, KeyError)
    assert "no run 99" in str(info.value) and "4, 2, 1" in str(info.value)
    with pytest.raises(NotFoundError, match="no run 3"):
        flow["3"]  # exists, but belongs to OtherFlow
    with pytest.raises(NotFoundError, match="not a run id"):
        flow["latest"]


# --- Run --------------------------------------------------------------------------------------


def test_run_record(flow: Flow) -> None:
    run = flow["1"]
    assert (run.id, run.pathspec, run.flow_name) == ("1", "TrainFlow/1", "TrainFlow")
    assert run.status == "succeeded" and run.successful and run.finished
    assert run.created_at == datetime.fromtimestamp(T0, UTC)
    assert run.created_at.tzinfo is not None
    assert run.finished_at == datetime.fromtimestamp(T0 + 60, UTC)
    assert run.tags == frozenset({"nightly"})
    assert run.origin_run_id is None and run.error is None
    assert [s["name"] for s in run.graph["steps"]] == ["start", "train", "join", "end"]
    assert repr(run) == "Run('TrainFlow/1')"


def test_run_record_of_failed_and_running_runs(flow: Flow) -> None:
    failed, running = flow["2"], flow["4"]
    assert failed.status == "failed" and not failed.successful and failed.finished
    assert failed.error == "step train failed"
    assert running.status == "running" and not running.finished and running.finished_at is None
    assert running.origin_run_id == "2"


def test_parameters(flow: Flow) -> None:
    run = flow["1"]
    assert run.parameters == {"alpha": 0.1, "config": {"k": 1}}
    run.parameters["alpha"] = 5  # a copy: the run's own mapping is unchanged
    assert run.parameters["alpha"] == 0.1
    assert flow["2"].parameters == {}


def test_steps_in_graph_order(flow: Flow) -> None:
    run = flow["1"]
    assert [s.name for s in run] == ["start", "train", "join", "end"]
    assert "train" in run and "nope" not in run
    assert [s.name for s in flow["2"]] == ["start", "train"]


def test_steps_follow_parents_not_definition_order(path: str) -> None:
    graph = {
        "steps": [
            {"name": "end", "in": ["b"]},
            {"name": "b", "in": ["a"]},
            {"name": "start", "in": []},
            {"name": "a", "in": ["start"]},
        ]
    }
    run_id = write_run(path, "Shuffled", [T("end"), T("b"), T("a"), T("start")], graph=graph)
    run = Flow("Shuffled", path)[run_id]
    assert [s.name for s in run] == ["start", "a", "b", "end"]


def test_missing_step_lists_steps(flow: Flow) -> None:
    with pytest.raises(NotFoundError) as info:
        flow["1"]["nope"]
    assert isinstance(info.value, KeyError)
    assert "no step 'nope'" in str(info.value)
    assert "start, train, join, end" in str(info.value)
    with pytest.raises(NotFoundError, match="'join' of TrainFlow/2 has no finished task"):
        flow["2"]["join"]


def test_run_data_is_the_end_tasks(flow: Flow) -> None:
    run = flow["1"]
    assert run.data.total == 660
    assert run.end_task.pathspec == run["end"].task.pathspec
    assert "total" in run.data


def test_run_without_end_has_no_data(flow: Flow) -> None:
    run = flow["2"]
    with pytest.raises(AttributeError) as info:
        run.data  # noqa: B018
    assert isinstance(info.value, ArtifactNotFoundError)
    assert "did not reach its end step" in str(info.value)
    assert "start, train" in str(info.value)
    assert not hasattr(run, "data")


def test_refresh_reads_the_run_again(flow: Flow, path: str) -> None:
    run = flow["4"]
    execute(path, "UPDATE runs SET status = 'succeeded', finished_at = ? WHERE id = 4", [T0 + 400])
    assert run.status == "running"
    fresh = run.refresh()
    assert fresh.status == "succeeded" and fresh == run
    execute(path, "DELETE FROM runs WHERE id = 4")
    with pytest.raises(NotFoundError, match="no run 4"):
        run.refresh()


# --- Step -------------------------------------------------------------------------------------


def test_step_tasks_in_numeric_index_order(flow: Flow) -> None:
    step = flow["1"]["train"]
    assert (step.name, step.pathspec, repr(step)) == (
        "train",
        "TrainFlow/1/train",
        "Step('TrainFlow/1/train')",
    )
    assert [t.index for t in step] == list(range(12))
    assert len(step) == 12
    assert step.task.index == 0
    assert step.data.score == 0
    assert step.successful
    assert step.run == flow["1"]


def test_nested_foreach_paths_sort_numerically(path: str) -> None:
    paths = ["1.10", "0", "1.2", "10", "2", "1"]
    run_id = write_run(path, "Nested", [T("inner", p) for p in paths])
    step = Flow("Nested", path)[run_id]["inner"]
    assert [t.foreach_indices for t in step] == [(0,), (1,), (1, 2), (1, 10), (2,), (10,)]
    assert [t.index for t in step] == [0, 1, 2, 10, 2, 10]


def test_step_task_lookup_by_id(flow: Flow) -> None:
    step = flow["1"]["train"]
    first = step.task
    assert step[first.id] is first and step[int(first.id)] is first
    assert first.id in step and 999 not in step
    with pytest.raises(NotFoundError, match="no task '999'"):
        step["999"]


# --- Task -------------------------------------------------------------------------------------


def test_task_record(flow: Flow) -> None:
    start = flow["1"]["start"].task
    assert start.pathspec == f"TrainFlow/1/start/{start.id}"
    assert repr(start) == f"Task('TrainFlow/1/start/{start.id}')"
    assert (start.flow_name, start.run_id, start.step_name) == ("TrainFlow", "1", "start")
    assert start.index is None and start.foreach_indices == ()
    assert start.successful and start.finished and start.status == "succeeded"
    assert start.exception is None and start.traceback is None
    assert start.stdout == "" and start.stderr == ""
    assert start.started_at.tzinfo is not None
    assert start.finished_at > start.started_at


def test_task_output_and_failure(flow: Flow) -> None:
    assert flow["1"]["train"][next(t.id for t in flow["1"]["train"] if t.index == 2)].stdout == (
        "hello\n"
    )
    failed = flow["2"]["train"].tasks[1]
    assert failed.index == 1 and not failed.successful and failed.status == "failed"
    assert failed.exception == "ValueError: boom"
    assert failed.traceback is not None and failed.traceback.endswith("ValueError: boom\n")
    assert failed.stderr == "oops\n" and failed.stdout == ""
    assert list(failed.data) == []


def test_task_data(flow: Flow) -> None:
    end = flow["1"]["end"].task
    assert isinstance(end.data, DataView) and end.data is end.data
    assert repr(end.data) == f"DataView({end.pathspec!r})"
    assert list(end.data) == ["alpha", "arr", "obj", "pair", "total"]
    assert len(end.data) == 5
    assert "total" in end.data and "nope" not in end.data and 3 not in end.data
    assert "total" in end and "nope" not in end
    assert end.data.total == 660 == end.data["total"]
    assert end.data.pair == (1, 2) and type(end.data.pair) is tuple
    assert "total" in dir(end.data)


def test_values_are_cached_per_view(flow: Flow) -> None:
    end = flow["1"]["end"].task
    first = end.data.arr
    assert end.data.arr is first
    assert end["arr"].data is first


def test_numpy_and_custom_class_artifacts(flow: Flow) -> None:
    data = flow["1"].data
    arr = data.arr
    assert isinstance(arr, np.ndarray) and arr.dtype == np.float32 and arr.shape == (2, 3)
    np.testing.assert_array_equal(arr, np.arange(6, dtype=np.float32).reshape(2, 3))
    assert arr.flags.writeable
    assert isinstance(data.obj, Counted) and data.obj.value == 7


def test_data_artifact(flow: Flow) -> None:
    end = flow["1"]["end"].task
    art = end["total"]
    assert isinstance(art, DataArtifact)
    assert (art.name, art.encoding, art.data) == ("total", "msgpack", 660)
    assert art.sha == sha_of(660).hex() and len(art.sha) == 64
    assert art.size > 0
    assert art.pathspec == f"{end.pathspec}/total"
    assert repr(art) == f"DataArtifact('{end.pathspec}/total')"
    assert art.task is end
    arr = end["arr"]
    assert (arr.encoding, arr.size) == ("numpy", 6 * 4)
    assert end["obj"].encoding == "pickle"
    assert [a.name for a in end] == ["alpha", "arr", "obj", "pair", "total"]


def test_missing_artifact_errors(flow: Flow) -> None:
    end = flow["1"]["end"].task
    with pytest.raises(AttributeError) as info:
        end.data.nope  # noqa: B018
    assert isinstance(info.value, ArtifactNotFoundError)
    assert "no artifact 'nope'" in str(info.value)
    assert "alpha, arr, obj, pair, total" in str(info.value)
    with pytest.raises(KeyError):
        end["nope"]
    with pytest.raises(KeyError):
        end.data["nope"]
    assert not hasattr(end.data, "nope")
    assert getattr(end.data, "nope", 42) == 42


def test_private_names_never_reach_the_store(flow: Flow) -> None:
    end = flow["1"]["end"].task
    with pytest.raises(AttributeError):
        end.data._repr_html_  # noqa: B018
    assert end._index is None  # nothing was read


def test_loading_is_lazy(flow: Flow) -> None:
    Counted.loads = 0
    end = flow["1"]["end"].task
    assert "obj" in end.data and len(list(end.data)) == 5
    assert end["obj"].encoding == "pickle"
    end.data.total  # noqa: B018
    assert Counted.loads == 0
    end.data.obj  # noqa: B018
    end.data.obj  # noqa: B018
    assert Counted.loads == 1


def test_names_work_with_a_damaged_blob(flow: Flow, path: str) -> None:
    execute(path, "UPDATE blobs SET data = x'00ff' WHERE sha = ?", [sha_of(Counted(7))])
    end = flow["1"]["end"].task
    assert list(end.data) == ["alpha", "arr", "obj", "pair", "total"]
    assert end.data.total == 660
    # A pickle is never unpickled from bytes that do not match their hash (safe loading).
    with pytest.raises(UntrustedArtifactError) as info:
        end.data.obj  # noqa: B018
    assert "'obj'" in str(info.value) and end.pathspec in str(info.value)


def test_missing_blob_is_a_store_error(flow: Flow, path: str) -> None:
    execute(path, "DELETE FROM blobs WHERE sha = ?", [sha_of(660)])
    end = flow["1"]["end"].task
    assert "total" in end.data
    with pytest.raises(StoreError, match="missing"):
        end.data.total  # noqa: B018


def test_large_chunked_artifact(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    big = np.arange(3 * CHUNK_SIZE // 8 + 5, dtype=np.int64)  # 3 chunks and a bit
    write_run(store, "Big", [T("end", artifacts={"big": big})])
    monkeypatch.setattr(_queries, "CHUNK_WINDOW", 2)  # several windows of chunk rows
    art = Flow("Big", store)["1"]["end"].task["big"]
    assert art.size == big.nbytes
    np.testing.assert_array_equal(art.data, big)
    execute(store, "DELETE FROM blob_chunks WHERE idx = 2")
    with pytest.raises(StoreError, match="incomplete"):
        Flow("Big", store)["1"]["end"].task.data.big  # noqa: B018


# --- objects: pickling, equality, connections ---------------------------------------------------


def test_objects_pickle_and_read_after(flow: Flow) -> None:
    run = flow["1"]
    step = run["train"]
    task = run["end"].task
    art = task["arr"]
    assert task.data.total == 660  # the connection is open and values are cached
    for obj in (flow, run, step, task, art, task.data):
        back = pickle.loads(pickle.dumps(obj))
        assert repr(back) == repr(obj)
    assert pickle.loads(pickle.dumps(run)).data.total == 660
    assert pickle.loads(pickle.dumps(task)) == task
    assert [t.index for t in pickle.loads(pickle.dumps(step))] == list(range(12))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(art)).data, art.data)
    view = pickle.loads(pickle.dumps(task.data))
    assert view.total == 660 and list(view) == list(task.data)
    assert pickle.loads(pickle.dumps(flow))["2"].status == "failed"


def test_equality_and_hash(flow: Flow, path: str) -> None:
    other = Flow("TrainFlow", path)
    assert flow["1"] == other["1"] and hash(flow["1"]) == hash(other["1"])
    assert flow["1"] != flow["2"]
    assert flow["1"]["train"] == other["1"]["train"]
    assert {flow["1"]["end"].task, other["1"]["end"].task} == {other["1"]["end"].task}
    assert isinstance(flow["1"], Run) and isinstance(flow["1"]["end"], Step)
    assert isinstance(flow["1"]["end"].task, Task)


def test_close_and_reopen(flow: Flow) -> None:
    with flow:
        assert flow["1"].status == "succeeded"
    assert flow._handle._conn is None
    assert flow["1"].data.total == 660


def test_threads_share_a_flow(flow: Flow) -> None:
    results: list[int] = []

    def work() -> None:
        for run_id in ("1", "2", "4"):
            results.append(len(list(flow[run_id])))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == sorted([4, 2, 1] * 8)


def test_reads_while_a_writer_holds_a_transaction(flow: Flow, path: str) -> None:
    run = flow["1"]
    with writer(path) as conn:
        conn.execute("BEGIN IMMEDIATE")
        new_id = write_run(path, "TrainFlow", [T("start")], conn=conn)
        start = time.monotonic()
        assert [r.id for r in flow.runs()] == ["4", "2", "1"]  # uncommitted: not seen
        assert run.data.total == 660
        assert Flow("TrainFlow", path)["1"]["train"].task.data.score == 0
        assert time.monotonic() - start < 2  # no waiting on the writer's lock
        conn.execute("COMMIT")
    assert flow.latest_run is not None and flow.latest_run.id == str(new_id)
