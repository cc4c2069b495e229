"""``dump ... -o FILE`` writes an artifact's whole value (never a preview) in a form that loads
back, from ``asyncflow dump`` and ``python flow.py dump``; an existing file needs --force."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from asyncflow import Flow
from asyncflow._cli import main

from ._storefixture import T, write_run

BIG = np.arange(5000, dtype=np.int64).reshape(50, 100)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("dump") / "runs.db")
    write_run(
        path,
        "DumpFlow",
        [
            T(
                "start",
                artifacts={
                    "big": BIG,
                    "blob": b"\x00\xffraw",
                    "text": "h\u00e9llo\nno newline at the end",
                    "nested": {"a": [1, 2, {"b": (3, 4)}], "long": list(range(3000))},
                },
            )
        ],
    )
    return path


def task_of(store: str) -> str:
    with Flow("DumpFlow", store) as flow:
        return flow["1"]["start"].task.pathspec


def dump(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_dump_o_writes_a_whole_numpy_array_as_npy(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "big.npy"
    code, out, err = dump(
        capsys, "dump", f"{task_of(store)}/big", "-o", str(target), "--store", store
    )
    assert code == 0, err
    assert out == "" and "numpy.load" in err
    np.testing.assert_array_equal(np.load(target, allow_pickle=False), BIG)  # not "..."


def test_dump_o_writes_bytes_as_they_are_and_text_as_utf8(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task = task_of(store)
    assert dump(capsys, "dump", f"{task}/blob", "-o", str(tmp_path / "b"), "--store", store)[0] == 0
    assert (tmp_path / "b").read_bytes() == b"\x00\xffraw"
    assert dump(capsys, "dump", task, "text", "-o", str(tmp_path / "t"), "--store", store)[0] == 0
    assert (tmp_path / "t").read_bytes() == "h\u00e9llo\nno newline at the end".encode()


def test_dump_o_pickles_any_other_value_whole(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "nested.pkl"
    code, _, err = dump(
        capsys, "dump", task_of(store), "nested", "-o", str(target), "--store", store
    )
    assert code == 0, err
    with open(target, "rb") as fh:
        assert pickle.load(fh) == {"a": [1, 2, {"b": (3, 4)}], "long": list(range(3000))}


def test_dump_o_refuses_to_overwrite_without_force(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "keep.txt"
    target.write_text("mine")
    code, _, err = dump(
        capsys, "dump", f"{task_of(store)}/blob", "-o", str(target), "--store", store
    )
    assert code == 2 and "exists already" in err and "--force" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert target.read_text() == "mine"
    code, _, err = dump(
        capsys, "dump", f"{task_of(store)}/blob", "-o", str(target), "--force", "--store", store
    )
    assert code == 0, err
    assert target.read_bytes() == b"\x00\xffraw"
    code, _, err = dump(
        capsys, "dump", f"{task_of(store)}/blob", "--raw", "-o", str(target), "--store", store
    )
    assert code == 2 and "exists already" in err


def test_a_failed_dump_leaves_no_file(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = dump(
        capsys, "dump", f"{task_of(store)}/nope", "-o", str(tmp_path / "x"), "--store", store
    )
    assert code == 2 and "no artifact 'nope'" in err
    assert os.listdir(tmp_path) == []


def test_dump_name_after_a_task_pathspec_only(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = dump(capsys, "dump", "DumpFlow/1/start", "big", "--store", store)
    assert code == 2 and "bad pathspec" in err
    code, _, err = dump(capsys, "dump", task_of(store), "--store", store)
    assert code == 2 and "bad pathspec" in err and "Flow/run/step/task ARTIFACT" in err


FLOW = """\
    import numpy as np
    from asyncflow import FlowSpec, step

    class ArrFlow(FlowSpec):
        @step
        def start(self):
            self.arr = np.arange(4000).reshape(40, 100)
            self.next(self.end)

        @step
        def end(self):
            pass

    if __name__ == "__main__":
        ArrFlow()
"""


def test_flow_file_dump_o_writes_the_real_value(tmp_path: Path) -> None:
    (tmp_path / "arr_flow.py").write_text(textwrap.dedent(FLOW))

    def cmd(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "arr_flow.py", *args, "--store", "runs.db"],
            cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    assert cmd("run").returncode == 0
    with Flow("ArrFlow", str(tmp_path / "runs.db")) as flow:
        task = flow["1"]["start"].task.id
    done = cmd("dump", f"1/start/{task}", "arr", "-o", "a.npy")
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.arange(4000).reshape(40, 100))
    done = cmd("dump", f"1/start/{task}/arr", "-o", "a.npy")
    assert done.returncode == 2 and "exists already" in done.stderr
    done = cmd("dump", f"1/start/{task}", "-o", "all.bin")
    assert done.returncode == 2 and "-o writes one artifact's value" in done.stderr
    assert not (tmp_path / "all.bin").exists()


def test_dump_o_never_writes_over_the_store_or_its_side_files_even_with_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import hashlib
    import shutil

    path = str(tmp_path / "own.db")
    write_run(path, "DumpFlow", [T("start", artifacts={"x": 5})])
    task = task_of(path)
    before = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    os.symlink(path, tmp_path / "alias.db")
    for target in (path, str(tmp_path / "alias.db"), os.path.relpath(path)):
        code, _, err = dump(capsys, "dump", f"{task}/x", "-o", target, "--force", "--store", path)
        assert code == 2 and "is the store dump reads from" in err, (target, err)
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == before
    with Flow("DumpFlow", path) as flow:
        assert flow["1"]["start"].task["x"].data == 5
    copy = tmp_path / "copy.db"
    shutil.copyfile(path, copy)  # a copy of the store is a file like any other
    code, _, err = dump(capsys, "dump", f"{task}/x", "-o", str(copy), "--force", "--store", path)
    assert code == 0, err


def test_dump_o_never_replaces_a_folder_a_pipe_or_a_link_even_with_force(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task = task_of(store)
    folder = tmp_path / "folder"
    folder.mkdir()
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    link = tmp_path / "link"
    (tmp_path / "real.txt").write_text("mine")
    os.symlink(tmp_path / "real.txt", link)
    for target in (folder, pipe, link):
        code, _, err = dump(
            capsys, "dump", f"{task}/text", "-o", str(target), "--force", "--store", store
        )
        assert code == 2 and "is not a regular file" in err, (target, err)
    assert folder.is_dir() and pipe.is_fifo() and link.is_symlink()
    assert (tmp_path / "real.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".dump-")] == []


def test_dump_without_o_prints_a_huge_value_cut_and_says_how_to_get_it_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(tmp_path / "huge.db")
    huge = "y" * 3_000_000 + "THE END"
    write_run(path, "HugeFlow", [T("start", artifacts={"huge": huge, "many": list(range(10**5))})])
    with Flow("HugeFlow", path) as flow:
        task = flow["1"]["start"].task.pathspec
    hint = f"write the whole value to a file with `asyncflow dump {task}/huge -o FILE --store"
    code, out, err = dump(capsys, "dump", f"{task}/huge", "--store", path)
    assert code == 0, err
    assert len(out) < 10_500 and "THE END" not in out
    assert out.startswith("y" * 10_000 + "\n... (cut to its first 10,000 characters of ")
    assert "3,000,007 characters" in out and hint in out
    code, out, err = dump(capsys, "dump", f"{task}/many", "--store", path)
    assert code == 0 and len(out) < 10_500 and "characters as printed" in out
    # -o still writes it whole, as the hint says
    target = tmp_path / "huge.txt"
    assert dump(capsys, "dump", f"{task}/huge", "-o", str(target), "--store", path)[0] == 0
    assert target.read_text() == huge
    # the flow file's dump, of one value or of a whole task, is cut the same way
    (tmp_path / "huge_flow.py").write_text(
        "from asyncflow import FlowSpec\nclass HugeFlow(FlowSpec):\n    pass\n"
        "if __name__ == '__main__':\n    HugeFlow.main()\n"
    )
    for spec in ("1/start/1", "1/start/1/huge"):
        done = subprocess.run(
            [sys.executable, "huge_flow.py", "dump", spec, "--store", path],
            cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert len(done.stdout) < 30_000 and "THE END" not in done.stdout  # two values
        assert hint in done.stdout


def test_dump_o_files_follow_the_umask_and_force_keeps_the_replaced_file_s_mode(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task = task_of(store)
    for mask, mode in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
        target = tmp_path / f"text-{mask:o}.txt"
        before = os.umask(mask)
        try:
            code, _, err = dump(capsys, "dump", f"{task}/text", "-o", str(target), "--store", store)
        finally:
            os.umask(before)
        assert code == 0, err
        assert target.stat().st_mode & 0o777 == mode, oct(target.stat().st_mode)
    kept = tmp_path / "kept.bin"
    kept.write_bytes(b"old")
    kept.chmod(0o640)
    assert (
        dump(capsys, "dump", f"{task}/blob", "-o", str(kept), "--force", "--store", store)[0] == 0
    )
    assert kept.read_bytes() == b"\x00\xffraw" and kept.stat().st_mode & 0o777 == 0o640


def test_dump_o_with_an_empty_name_is_an_error_not_a_print(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task = task_of(store)
    code, out, err = dump(capsys, "dump", f"{task}/text", "-o", "", "--store", store)
    assert code == 2 and out == ""
    assert "-o '' names no file; give -o the name of the file" in err
