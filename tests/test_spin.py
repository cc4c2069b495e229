"""``spin``: one stored task run again with the current code, from a store or an archive,
leaving the file byte-identical (its sha256) and no write-ahead log behind."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import anyio
import pytest

from asyncflow import (
    NotFoundError,
    Run,
    SpinResult,
    Step,
    StepFailed,
    StoreError,
    UntrustedArtifactError,
    UsageError,
)

FLOW = '''\
    import sys
    from typing import Any

    from asyncflow import FlowSpec, Parameter, current, step


    class Marker:
        """Unpickling one writes the file it names: proof that a pickle was loaded."""

        def __init__(self, path: str) -> None:
            self.path = path

        def __reduce__(self) -> Any:
            return (touch, (self.path,))


    def touch(path: str) -> "Marker":
        if path:
            with open(path, "a") as fh:
                fh.write("unpickled\\n")
        return Marker(path)


    class IterFlow(FlowSpec):
        alpha = Parameter("alpha", default=2)
        marker = Parameter("marker", default="")

        @step
        def start(self) -> None:
            self.items = [10, 20, 30]
            self.obj = Marker(self.marker)
            self.next(self.train, foreach="items")

        @step
        def train(self) -> None:
            self.score = self.input * self.alpha  # «train»
            print(f"train {current.task_id} of {current.run_id}: {self.score}")
            print("a warning", file=sys.stderr)
            self.next(self.join)

        @step
        def join(self, inputs: Any) -> None:
            self.total = sum(i.score for i in inputs)  # «join»
            self.merge_artifacts(inputs, include=["obj"])
            self.next(self.end)

        @step
        def end(self) -> None:
            self.kind = type(self.obj).__name__  # «end»


    if __name__ == "__main__":
        IterFlow()
'''


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def companions(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.name + "-"))


def write_flow(folder: Path, **changes: str) -> Path:
    text = textwrap.dedent(FLOW)
    for mark, line in changes.items():
        lines = text.splitlines(keepends=True)
        at = next(i for i, ln in enumerate(lines) if f"# «{mark}»" in ln)
        indent = lines[at][: len(lines[at]) - len(lines[at].lstrip())]
        lines[at] = f"{indent}{line}  # «{mark}»\n"
        text = "".join(lines)
    path = folder / "iter_flow.py"
    path.write_text(text, encoding="utf-8")
    return path


def flow_cmd(
    folder: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "iter_flow.py", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def ran(tmp_path: Path) -> Path:
    """A folder with iter_flow.py and runs.db holding run 1 (succeeded), written by another
    process, so the store is one closed file."""
    write_flow(tmp_path)
    done = flow_cmd(tmp_path, "run", "--store", "runs.db")
    assert done.returncode == 0, done.stderr
    assert companions(tmp_path / "runs.db") == []
    return tmp_path


def train_ids(store: Path) -> list[str]:
    with Step("IterFlow/1/train", str(store)) as step:  # its connection closed at once
        return [t.id for t in step.tasks]


def load_flow(folder: Path) -> type:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        f"iter_flow_{id(folder)}", folder / "iter_flow.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.IterFlow  # type: ignore[no-any-return]


# --- the command line -----------------------------------------------------------------------


def test_spin_runs_the_current_code_of_one_task_and_leaves_the_store_byte_identical(
    ran: Path,
) -> None:
    store = ran / "runs.db"
    before = sha256(store)
    second = train_ids(store)[1]
    write_flow(ran, train="self.score = self.input * 100")  # the step is edited after the run
    done = flow_cmd(ran, "spin", "train", "--run-id", "1", "--task", second, "--store", "runs.db")
    assert done.returncode == 0, done.stderr
    assert f"train {second} of 1: 2000" in done.stdout  # its own output, from the new code
    assert "a warning" in done.stderr
    assert f"spun IterFlow/1/train/{second} (nothing was stored)" in done.stdout
    assert "  score = 2000" in done.stdout
    assert "next: join" in done.stdout
    assert sha256(store) == before
    assert companions(store) == []  # no -wal or -shm left behind
    with Run("IterFlow/1", str(store)) as run:
        assert run["train"][second].data.score == 40  # as it ran


def test_spin_a_join_reads_every_parent_task(ran: Path) -> None:
    store = ran / "runs.db"
    before = sha256(store)
    write_flow(ran, join="self.total = [i.score for i in inputs]")
    done = flow_cmd(ran, "--store", "runs.db", "spin", "join", "--run-id", "1")
    assert done.returncode == 0, done.stderr
    assert "  total = [20, 40, 60]" in done.stdout
    assert sha256(store) == before and companions(store) == []


def test_spin_of_a_foreach_step_needs_the_task_and_lists_the_ids(ran: Path) -> None:
    done = flow_cmd(ran, "spin", "train", "--run-id", "1", "--store", "runs.db")
    assert done.returncode == 2
    ids = ", ".join(train_ids(ran / "runs.db"))
    assert f"has 3 tasks; say which one to spin with --task ID (task=ID): {ids}." in done.stderr
    assert "Traceback" not in done.stderr


def test_a_failing_spin_prints_the_error_and_traceback_exits_1_and_stores_nothing(
    ran: Path,
) -> None:
    store = ran / "runs.db"
    before = sha256(store)
    write_flow(ran, join="raise ValueError('join broke')")
    done = flow_cmd(ran, "spin", "join", "--run-id", "1", "--store", "runs.db")
    assert done.returncode == 1, done.stderr
    assert "error: step 'join' failed when spun from task IterFlow/1/join/" in done.stderr
    assert "ValueError: join broke (nothing was stored)" in done.stderr
    assert "Traceback (most recent call last):" in done.stderr
    assert 'iter_flow.py", line' in done.stderr and "in join" in done.stderr
    assert "_attempt.py" not in done.stderr  # the step's own frames, not the machinery's
    assert sha256(store) == before and companions(store) == []
    assert Run("IterFlow/1", str(store)).successful


def test_spin_from_an_archive_reads_it_in_place(ran: Path) -> None:
    archive = ran / "one.afrun"
    exported = subprocess.run(
        [sys.executable, "-m", "asyncflow", "export", "IterFlow/1", "-o", str(archive),
         "--store", str(ran / "runs.db")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    (ran / "runs.db").unlink()  # the store is gone: only the archive holds the run
    before = sha256(archive)
    write_flow(ran, end="self.kind = 'from the archive'")
    done = flow_cmd(ran, "spin", "end", "--run-id", "1", "--archive", "one.afrun")
    assert done.returncode == 0, done.stderr
    assert "  kind = 'from the archive'" in done.stdout
    assert sha256(archive) == before and companions(archive) == []
    assert not (ran / "runs.db").exists() and not (ran / "asyncflow.db").exists()


def test_a_tampered_archive_value_is_refused_by_spin(ran: Path) -> None:
    archive = ran / "one.afrun"
    exported = subprocess.run(
        [sys.executable, "-m", "asyncflow", "export", "IterFlow/1", "-o", str(archive),
         "--store", str(ran / "runs.db")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    with Run("IterFlow/1", str(archive)) as run:
        items = run["start"].task["items"]
    with sqlite3.connect(archive) as conn:  # the list the foreach split, edited in place
        (payload,) = conn.execute(
            "SELECT data FROM blobs WHERE sha = ?", (bytes.fromhex(items.sha),)
        ).fetchone()
        changed = bytes(payload).replace(b"\x1e", b"\x1f")  # 30 -> 31
        assert changed != bytes(payload)
        conn.execute("UPDATE blobs SET data = ? WHERE sha = ?", (changed, bytes.fromhex(items.sha)))
    conn.close()
    last = train_ids(archive)[2]
    done = flow_cmd(ran, "spin", "train", "--run-id", "1", "--task", last, "--archive", "one.afrun")
    assert done.returncode == 2, done.stdout
    assert "do not match its hash" in done.stderr and "one.afrun" in done.stderr
    assert "train " not in done.stdout  # the step never ran


# --- the API --------------------------------------------------------------------------------


def test_flow_spin_returns_what_the_task_set_and_stores_nothing(ran: Path) -> None:
    store = ran / "runs.db"
    before = sha256(store)
    write_flow(ran, train="self.score, self.extra = -self.input, 'new'")
    flow_cls = load_flow(ran)
    first = train_ids(store)[0]

    async def main() -> SpinResult:
        return await flow_cls(store=str(store), echo=False).spin("train", run_id="1", task=first)  # type: ignore[no-any-return]

    result = anyio.run(main)
    assert isinstance(result, SpinResult) and result.ok
    assert result.artifacts == {"extra": "new", "score": -10}
    assert result.stdout == f"train {first} of 1: -10\n" and result.stderr == "a warning\n"
    assert result.next == ("join",) and result.pathspec == f"IterFlow/1/train/{first}"
    assert sha256(store) == before and companions(store) == []


def test_flow_spin_of_a_failing_step_raises_step_failed_and_stores_nothing(ran: Path) -> None:
    store = ran / "runs.db"
    before = sha256(store)
    write_flow(ran, end="raise KeyError('gone')")
    flow_cls = load_flow(ran)

    async def main() -> None:
        await flow_cls(store=str(store), echo=False).spin("end", run_id=1)

    with pytest.raises(StepFailed) as info:
        anyio.run(main)
    assert isinstance(info.value.__cause__, KeyError)
    assert info.value.run.pathspec == "IterFlow/1" and "/end/" in info.value.pathspec
    assert "The stored run is unchanged" in str(info.value)
    assert sha256(store) == before and companions(store) == []


@pytest.mark.parametrize(
    ("kwargs", "error", "said"),
    [
        ({"step": "nope", "run_id": 1}, NotFoundError, "its steps: start, train, join, end"),
        ({"step": "end", "run_id": 9}, NotFoundError, "has no run 9"),
        ({"step": "end", "run_id": "x"}, UsageError, "'x' is not a run id of IterFlow"),
        ({"step": "end", "run_id": 1, "task": 999}, NotFoundError, "has no task 999; its tasks:"),
        ({"step": "end", "run_id": 1, "task": "a"}, UsageError, "'a' is not a task id"),
        ({"step": "train", "run_id": 1}, UsageError, "has 3 tasks"),
    ],
)
def test_spin_errors_say_what_exists(
    ran: Path, kwargs: dict[str, object], error: type, said: str
) -> None:
    flow_cls = load_flow(ran)

    async def main() -> None:
        await flow_cls(store=str(ran / "runs.db"), echo=False).spin(**kwargs)

    with pytest.raises(error) as info:
        anyio.run(main)
    assert said in str(info.value)


def test_spin_of_a_step_the_run_did_not_reach_lists_the_steps_with_tasks(ran: Path) -> None:
    write_flow(ran, train="raise RuntimeError('stop here')")
    done = flow_cmd(ran, "run", "--store", "runs.db")
    assert done.returncode != 0
    flow_cls = load_flow(ran)

    async def main() -> None:
        await flow_cls(store=str(ran / "runs.db"), echo=False).spin("join", run_id=2)

    with pytest.raises(NotFoundError) as info:
        anyio.run(main)
    assert "step 'join' has no task to spin in run IterFlow/2" in str(info.value)
    assert "steps with tasks: start, train" in str(info.value)


def test_spin_never_unpickles_a_value_signed_by_someone_else(
    ran: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # Another user's run (their key) stored a pickle whose unpickling writes a marker file;
    # spinning the step that reads it here must refuse it before anything is unpickled.
    other = tmp_path_factory.mktemp("other")
    marker = other / "marker.txt"
    env = {"ASYNCFLOW_KEY_FILE": str(other / "their.key")}
    done = flow_cmd(ran, "run", "--store", "theirs.db", "--marker", str(marker), env=env)
    assert done.returncode == 0, done.stderr
    marker.unlink(missing_ok=True)  # their run read it (their key): start from nothing
    store = ran / "theirs.db"
    before = sha256(store)
    flow_cls = load_flow(ran)

    async def main() -> None:
        await flow_cls(store=str(store), echo=False).spin("end", run_id=1)

    with pytest.raises(StepFailed) as info:
        anyio.run(main)
    assert isinstance(info.value.__cause__, UntrustedArtifactError)
    assert not marker.exists()
    assert sha256(store) == before


def test_spin_of_a_missing_store_is_a_store_error(tmp_path: Path) -> None:
    write_flow(tmp_path)
    flow_cls = load_flow(tmp_path)

    async def main() -> None:
        await flow_cls(store=str(tmp_path / "none.db"), echo=False).spin("end", run_id=1)

    with pytest.raises(StoreError):
        anyio.run(main)
    assert not (tmp_path / "none.db").exists()


def test_spin_is_one_attempt_in_this_process_whatever_the_step_s_policies(
    tmp_path: Path,
) -> None:
    from tests.flows.spin_flows import PolicyFlow

    path, log = str(tmp_path / "runs.db"), tmp_path / "attempts.txt"

    async def main() -> tuple[SpinResult, BaseException]:
        await PolicyFlow(store=path, echo=False).run(log=str(log))
        ok = await PolicyFlow(store=path, echo=False).spin("work", run_id=1)
        with pytest.raises(StepFailed) as info:
            await PolicyFlow(store=path, echo=False).run(fail=True, log=str(log))
        log.unlink()
        try:
            await PolicyFlow(store=path, echo=False).spin("work", run_id=2)
        except StepFailed as exc:
            return ok, exc
        raise AssertionError(f"the spin did not fail ({info.value})")

    ok, error = anyio.run(main)
    assert ok.artifacts["pid"] == os.getpid()  # @executor("process"): it ran here
    assert isinstance(error.__cause__, RuntimeError)
    assert log.read_text() == "attempt\n"  # once: @retry(times=3) does not apply
    with Step("PolicyFlow/2/work", path) as step:
        assert step.task.retry_count == 3  # where the run tried 4 times


def test_spin_prints_values_cut_to_200_characters(ran: Path) -> None:
    write_flow(ran, end="self.kind = 'y' * 1000")
    done = flow_cmd(ran, "spin", "end", "--run-id", "1", "--store", "runs.db")
    assert done.returncode == 0, done.stderr
    [line] = [ln for ln in done.stdout.splitlines() if ln.startswith("  kind = ")]
    assert len(line) <= len("  kind = ") + 200 and "..." in line


def test_spin_leaves_a_killed_run_s_write_ahead_log_as_it_was(ran: Path) -> None:
    # A run killed mid-way leaves its last commits in runs.db-wal. Spinning one of its tasks
    # must not fold that log into the file (its bytes would change), and the commits must
    # still be there for the next reader.
    write_flow(ran, end="open('hung', 'w').close(); __import__('time').sleep(120)")
    proc = subprocess.Popen(
        [sys.executable, "iter_flow.py", "run", "--quiet", "--store", "runs.db"],
        cwd=ran,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(1200):
            if (ran / "hung").exists() or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert (ran / "hung").exists(), "the run never reached its hanging step"
    finally:
        proc.kill()
        proc.wait()
    store, wal = ran / "runs.db", ran / "runs.db-wal"
    assert wal.exists() and wal.stat().st_size > 0, "the killed run left no log to keep"
    before, log = sha256(store), wal.read_bytes()
    write_flow(ran, join="self.total = -sum(i.score for i in inputs)")
    done = flow_cmd(ran, "spin", "join", "--run-id", "2", "--store", "runs.db")
    assert done.returncode == 0, done.stderr
    assert "  total = -120" in done.stdout
    assert sha256(store) == before
    assert wal.read_bytes() == log
    with Run("IterFlow/2", str(store)) as run:  # the killed run's tasks are all still there
        assert run.status == "crashed"
        assert [s.name for s in run] == ["start", "train", "join"]
        assert run["join"].task.data.total == 120
    # Any other reader folds the log into the file when it is the last to close (README,
    # "Local UI"): the same data, now in the file itself, and no -wal left.
    assert not wal.exists()
    assert sha256(store) != before
    with Run("IterFlow/2", str(store)) as run:
        assert run["join"].task.data.total == 120


def test_a_step_raising_a_bare_base_exception_is_a_failed_spin(ran: Path) -> None:
    store = ran / "runs.db"
    before = sha256(store)
    write_flow(ran, end="raise BaseException('not an Exception')")
    done = flow_cmd(ran, "spin", "end", "--run-id", "1", "--store", "runs.db")
    assert done.returncode == 1, done.stderr
    assert "BaseException: not an Exception (nothing was stored)" in done.stderr
    assert "ExceptionGroup" not in done.stderr  # the step's own traceback, not a crash's
    flow_cls = load_flow(ran)

    async def main() -> None:
        await flow_cls(store=str(store), echo=False).spin("end", run_id=1)

    with pytest.raises(StepFailed) as info:
        anyio.run(main)
    assert type(info.value.__cause__) is BaseException
    assert sha256(store) == before and companions(store) == []


def test_ctrl_c_stops_a_spin_with_code_130_and_stores_nothing(ran: Path) -> None:
    store = ran / "runs.db"
    before = sha256(store)
    write_flow(ran, end="open('spinning', 'w').close(); __import__('time').sleep(120)")
    proc = subprocess.Popen(
        [sys.executable, "iter_flow.py", "spin", "end", "--run-id", "1", "--store", "runs.db"],
        cwd=ran,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(1200):
            if (ran / "spinning").exists() or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert (ran / "spinning").exists(), "the spin never reached its step"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "the spin of step 'end' was stopped by SIGINT; nothing was stored" in err
    assert "Traceback" not in err
    assert sha256(store) == before and companions(store) == []


def export_run(ran: Path) -> Path:
    archive = ran / "one.afrun"
    exported = subprocess.run(
        [sys.executable, "-m", "asyncflow", "export", "IterFlow/1", "-o", str(archive),
         "--store", str(ran / "runs.db")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    return archive


def test_spin_trust_loads_an_archive_s_pickles_and_the_refusal_says_so(
    ran: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    archive = export_run(ran)
    before = sha256(archive)
    done = flow_cmd(ran, "spin", "end", "--run-id", "1", "--archive", "one.afrun")
    assert done.returncode == 1, done.stderr
    assert "cannot load the pickled artifact 'obj'" in done.stderr
    # the advice is one spin can follow (it has no `asyncflow trust` of a read-only archive)
    assert "spin the task again with --trust (flow.spin(..., trust=True))" in done.stderr
    assert "asyncflow trust" not in done.stderr
    done = flow_cmd(ran, "spin", "end", "--run-id", "1", "--archive", "one.afrun", "--trust")
    assert done.returncode == 0, done.stderr
    assert "  kind = 'Marker'" in done.stdout
    flow_cls = load_flow(ran)
    other = tmp_path_factory.mktemp("elsewhere")

    async def main() -> SpinResult:
        flow = flow_cls(store=str(other / "none.db"), echo=False)
        return await flow.spin("end", run_id=1, archive=archive, trust=True)  # type: ignore[no-any-return]

    assert anyio.run(main).artifacts["kind"] == "Marker"
    assert sha256(archive) == before and companions(archive) == []


def test_spin_trust_still_refuses_a_pickle_whose_bytes_were_edited(ran: Path) -> None:
    archive = export_run(ran)
    with Run("IterFlow/1", str(archive)) as run:
        obj = run["start"].task["obj"]
    with sqlite3.connect(archive) as conn:
        (payload,) = conn.execute(
            "SELECT data FROM blobs WHERE sha = ?", (bytes.fromhex(obj.sha),)
        ).fetchone()
        changed = bytes(payload).replace(b"Marker", b"Markes")
        assert changed != bytes(payload)
        conn.execute("UPDATE blobs SET data = ? WHERE sha = ?", (changed, bytes.fromhex(obj.sha)))
    conn.close()
    done = flow_cmd(ran, "spin", "end", "--run-id", "1", "--archive", "one.afrun", "--trust")
    assert done.returncode == 1, done.stdout
    assert "cannot load the pickled artifact 'obj'" in done.stderr
    assert "kind =" not in done.stdout


def test_spin_into_a_closed_pipe_exits_quietly(ran: Path) -> None:
    # `spin ... | head` (found by an attacker): the reader gone, the spin said a
    # BrokenPipeError traceback. It ends as `run | head` does now: code 0, nothing on stderr.
    proc = subprocess.Popen(
        [sys.executable, "iter_flow.py", "spin", "start", "--run-id", "1", "--store", "runs.db"],
        cwd=ran,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    proc.stdout.close()  # the reader goes away before the spin prints anything
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err


@pytest.mark.parametrize(
    "declared", ['Parameter("beta", default=3)', 'Config("beta", default_value={"k": 1})']
)
def test_spin_of_a_step_reading_a_parameter_added_after_the_run_says_so(
    ran: Path, declared: str
) -> None:
    # Found by an attacker: a parameter or config declared after the run was a KeyError.
    path = write_flow(ran, end="self.kind = self.beta")
    text = (
        path.read_text()
        .replace(
            'marker = Parameter("marker", default="")',
            f'marker = Parameter("marker", default="")\n    beta = {declared}',
        )
        .replace("import FlowSpec, Parameter,", "import Config, FlowSpec, Parameter,")
    )
    path.write_text(text)
    before = sha256(ran / "runs.db")
    done = flow_cmd(ran, "spin", "end", "--run-id", "1", "--store", "runs.db")
    assert done.returncode == 1
    assert "KeyError" not in done.stderr
    assert (
        "ArtifactNotFoundError: run 1 of IterFlow has no parameter or config 'beta': the flow "
        "declares it, but the run started before it did (the run's own: alpha, marker)"
    ) in done.stderr
    assert sha256(ran / "runs.db") == before


@pytest.mark.parametrize("schema", [3, 4])
def test_spin_of_an_older_store_leaves_it_as_it_was(tmp_path: Path, schema: int) -> None:
    # Found by an attacker: a spin upgraded a store of an older schema (the file changed,
    # which a spin promises never to do). It reads the older store as it is now.
    import gzip
    import importlib.util
    import shutil

    data = Path(__file__).parent / "data" / f"schema{schema}"
    store = tmp_path / "old.db"
    with gzip.open(data / "old_store.db.gz") as src, open(store, "wb") as dst:
        shutil.copyfileobj(src, dst)
    before = sha256(store)
    spec = importlib.util.spec_from_file_location(f"oldflow_{schema}", data / "oldflow.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    flow = module.OldFlow(store=str(store), echo=False)
    joined = anyio.run(lambda: flow.spin("join", run_id=1))
    assert joined.error is None and joined.artifacts["total"] == 60
    assert sha256(store) == before
    assert companions(store) == []
    with Run("OldFlow/1", str(store)) as run:  # a client still upgrades it, as documented
        assert run.data.total == 60
    assert sha256(store) != before
