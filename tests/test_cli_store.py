"""``asyncflow runs|show|dump|logs``: output, and one-line errors with exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from asyncflow._cli import main
from asyncflow._codecs import encode

from .test_client import build_store

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def path(store: str) -> str:
    build_store(store)
    return store


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    assert err.startswith("asyncflow: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def end_task_id(path: str) -> str:
    from asyncflow._client import Flow

    return Flow("TrainFlow", path)["1"].end_task.id


# --- runs -------------------------------------------------------------------------------------


def test_runs_of_every_flow_newest_first(path: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "runs", "--store", path)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["flow", "run", "status", "created", "(UTC)", "duration", "tags"]
    assert [line.split()[:3] for line in lines[1:]] == [
        ["TrainFlow", "4", "running"],
        ["OtherFlow", "3", "succeeded"],
        ["TrainFlow", "2", "failed"],
        ["TrainFlow", "1", "succeeded"],
    ]
    assert "2023-11-14 22:13:20  1m 00s" in lines[-1] and lines[-1].endswith("nightly")
    assert lines[1].split()[-2:] == ["-", "exp"]  # still running: no duration


def test_runs_filtered(path: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "runs", "TrainFlow", "--store", path, "--tag", "nightly")
    assert code == 0
    assert [line.split()[1] for line in out.splitlines()[1:]] == ["2", "1"]
    assert "exp,nightly" in out
    code, out, _ = run_cli(capsys, "runs", "--store", path, "--limit", "2")
    assert [line.split()[1] for line in out.splitlines()[1:]] == ["4", "3"]
    code, out, _ = run_cli(capsys, "runs", "--store", path, "--tag", "nope")
    assert code == 0 and out.startswith("No runs tagged nope")


def test_runs_default_store(
    path: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASYNCFLOW_STORE", path)
    code, out, _ = run_cli(capsys, "runs", "OtherFlow")
    assert code == 0 and out.splitlines()[1].split()[:2] == ["OtherFlow", "3"]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["runs", "Nope"], "OtherFlow, TrainFlow"),
        (["runs", "--limit", "0"], "at least 1"),
        (["runs", "--limit", "x"], "whole number"),
        (["show", "TrainFlow/99"], "no run 99"),
        (["show", "TrainFlow/1/nope"], "no step 'nope'"),
        (["show", "TrainFlow/1/end/999"], "no task '999'"),
        (["show", "TrainFlow//end"], "bad pathspec"),
        (["show", "A/1/b/2/c"], "bad pathspec"),
        (["dump", "TrainFlow/1/end/15"], "bad pathspec"),
        (["dump", "TrainFlow/1/end"], "no artifact 'end'"),
        (["dump", "TrainFlow/2/total"], "did not reach its end step"),
        (["logs", "TrainFlow"], "bad pathspec"),
        (["frobnicate"], "invalid choice"),
        ([], "required"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_wrong_input_is_one_line_and_exit_2(
    path: str, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    store = ["--store", path] if argv and argv[0] in ("runs", "show", "dump", "logs") else []
    code, out, err = run_cli(capsys, *argv, *store)
    assert code == 2 and out == ""
    assert needle in one_line_error(err)


def test_missing_and_foreign_stores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "runs", "--store", str(tmp_path / "absent.db"))
    assert code == 2 and "absent.db" in one_line_error(err)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"no database here" * 200)
    code, _, err = run_cli(capsys, "show", "TrainFlow/1", "--store", str(junk))
    assert code == 2 and "not an asyncflow store" in one_line_error(err)


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0 and "runs" in out and "dump" in out and "logs" in out


# --- show -------------------------------------------------------------------------------------


def test_show_run(path: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "show", "TrainFlow/1", "--store", path)
    assert code == 0
    assert out.startswith("Run TrainFlow/1  succeeded\n")
    assert "tags      nightly" in out
    assert "alpha   0.1" in out and "config  {'k': 1}" in out
    steps = out.split("steps\n", 1)[1].splitlines()
    assert [line.split()[:2] for line in steps[1:]] == [
        ["start", "1"],
        ["train", "12"],
        ["join", "1"],
        ["end", "1"],
    ]


def test_show_failed_run(path: str, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_cli(capsys, "show", "TrainFlow/2", "--store", path)
    assert "Run TrainFlow/2  failed" in out
    assert "error     step train failed" in out
    assert "parameters  (none)" in out
    assert "1 failed, 1 succeeded" in out


def test_show_flow_lists_its_runs(path: str, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_cli(capsys, "show", "TrainFlow", "--store", path)
    assert [line.split()[1] for line in out.splitlines()[1:]] == ["4", "2", "1"]


def test_show_step(path: str, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_cli(capsys, "show", "TrainFlow/1/train", "--store", path)
    lines = out.splitlines()
    assert lines[0] == "Step TrainFlow/1/train  12 tasks"
    assert [line.split()[1] for line in lines[2:]] == [str(i) for i in range(12)]
    _, out, _ = run_cli(capsys, "show", "TrainFlow/2/train", "--store", path)
    assert "ValueError: boom" in out.splitlines()[-1]


def test_show_task_with_artifacts(path: str, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_cli(capsys, "show", f"TrainFlow/1/end/{end_task_id(path)}", "--store", path)
    assert out.startswith(f"Task TrainFlow/1/end/{end_task_id(path)}  succeeded\n")
    rows = {line.split()[0]: line for line in out.split("artifacts\n", 1)[1].splitlines()[1:]}
    assert list(rows) == ["alpha", "arr", "obj", "pair", "total"]
    assert rows["total"].split() == ["total", "msgpack", "3", "B", "660"]
    assert rows["pair"].endswith("(1, 2)")
    assert "numpy" in rows["arr"] and "24 B" in rows["arr"] and "dtype=float32" in rows["arr"]
    assert "pickle" in rows["obj"] and "Counted" in rows["obj"]


def test_show_failed_task(path: str, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_cli(capsys, "show", "TrainFlow/2/train/3", "--store", path)
    assert "Task TrainFlow/2/train/3  failed" in out
    assert "index     1" in out
    assert "exception ValueError: boom" in out
    assert "  Traceback (most recent call last):" in out
    assert "artifacts  (none)" in out


# --- dump -------------------------------------------------------------------------------------


def test_dump_values(path: str, capsys: pytest.CaptureFixture[str]) -> None:
    task = f"TrainFlow/1/end/{end_task_id(path)}"
    assert run_cli(capsys, "dump", f"{task}/total", "--store", path)[1] == "660\n"
    assert run_cli(capsys, "dump", "TrainFlow/1/pair", "--store", path)[1] == "(1, 2)\n"
    out = run_cli(capsys, "dump", "TrainFlow/1/arr", "--store", path)[1]
    assert "dtype=float32" in out
    code, _, err = run_cli(capsys, "dump", f"{task}/nope", "--store", path)
    assert code == 2 and "no artifact 'nope'" in one_line_error(err)


def test_dump_raw_to_file(path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "arr.bin"
    code, out, _ = run_cli(
        capsys, "dump", "TrainFlow/1/arr", "--raw", "-o", str(target), "--store", path
    )
    assert code == 0 and out == ""
    assert target.read_bytes() == np.arange(6, dtype=np.float32).tobytes()
    code, _, err = run_cli(
        capsys,
        "dump",
        "TrainFlow/1/arr",
        "--raw",
        "-o",
        str(tmp_path / "no" / "x"),
        "--store",
        path,
    )
    assert code == 2 and "No such file" in one_line_error(err)


def test_dump_raw_to_stdout(path: str, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["dump", "TrainFlow/1/total", "--raw", "--store", path]) == 0
    assert capsysbinary.readouterr().out == bytes(encode(660).payload)


# --- logs -------------------------------------------------------------------------------------


def test_logs_of_a_run_are_prefixed(path: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "logs", "TrainFlow/1", "--store", path)
    assert code == 0 and err == ""
    assert out == "[TrainFlow/1/train/3] hello\n"
    code, out, err = run_cli(capsys, "logs", "TrainFlow/2/train", "--store", path)
    assert out == "" and err == "[TrainFlow/2/train/3] oops\n"


def test_logs_of_one_task_are_as_written(path: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "logs", "TrainFlow/1/train/3", "--store", path)[1:] == ("hello\n", "")
    _, out, err = run_cli(capsys, "logs", "TrainFlow/2/train/3", "--stderr", "--store", path)
    assert (out, err) == ("", "oops\n")
    _, out, err = run_cli(capsys, "logs", "TrainFlow/2/train/3", "--stdout", "--store", path)
    assert out == "" and "recorded no stdout" in err


def test_logs_stdout_and_stderr_exclusive(path: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "logs", "TrainFlow/2", "--stdout", "--stderr", "--store", path)
    assert code == 2 and "not allowed with" in one_line_error(err)


# --- the real command -------------------------------------------------------------------------


def test_python_m_asyncflow_exit_codes(path: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ASYNCFLOW_STORE": path}
    ok = subprocess.run(
        [sys.executable, "-m", "asyncflow", "runs", "TrainFlow"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert ok.returncode == 0 and ok.stderr == "" and "TrainFlow  1" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "asyncflow", "show", "TrainFlow/99"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert "no run 99" in one_line_error(bad.stderr)
