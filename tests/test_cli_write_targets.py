"""Files the command line writes for the user (``dump -o``, ``--run-id-file``) never land on
the store, on a side file SQLite reads as part of it (``-wal``, ``-shm``, ``-journal``,
existing or not, through links), on the flow file or on a pipe: found by a README-only
attacker, who turned the store into the text "2" with ``--run-id-file s.db`` and had SQLite
roll the store back to 64 KiB after ``dump -o s.db-journal``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

FLOW = textwrap.dedent(
    """\
    from asyncflow import FlowSpec, step

    class WriteFlow(FlowSpec):
        @step
        def start(self):
            self.blob = b"x" * 512
            self.next(self.end)

        @step
        def end(self):
            pass

    if __name__ == "__main__":
        WriteFlow()
    """
)


def _sh(folder: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=folder, capture_output=True, text=True, timeout=timeout
    )


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "flow.py").write_text(FLOW)
    done = _sh(tmp_path, "flow.py", "--store", "s.db", "run", "--quiet")
    assert done.returncode == 0, done.stderr
    return tmp_path


def _runs(folder: Path) -> list[str]:
    done = _sh(folder, "-m", "asyncflow", "runs", "--store", "s.db")
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if "WriteFlow" in line]


@pytest.mark.parametrize("target", ["s.db", "s.db-wal", "s.db-shm", "s.db-journal", "flow.py"])
def test_run_id_file_never_writes_over_the_store_or_the_flow(folder: Path, target: str) -> None:
    before = {name: _digest(folder / name) for name in ("s.db", "flow.py")}
    done = _sh(folder, "flow.py", "--store", "s.db", "run", "--run-id-file", target)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Nothing ran" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert {name: _digest(folder / name) for name in before} == before
    assert not (folder / "s.db-journal").exists()
    assert len(_runs(folder)) == 1  # the earlier run, and no new one


def test_run_id_file_through_a_linked_folder_is_refused(folder: Path) -> None:
    (folder / "alias").symlink_to(folder, target_is_directory=True)
    done = _sh(folder, "flow.py", "--store", "s.db", "run", "--run-id-file", "alias/s.db-wal")
    assert done.returncode == 2 and "is the store of the run" in done.stderr, done.stderr


def test_run_id_file_on_a_pipe_is_refused_before_the_run(folder: Path) -> None:
    os.mkfifo(folder / "pipe")
    done = _sh(folder, "flow.py", "--store", "s.db", "run", "--run-id-file", "pipe", timeout=60)
    assert done.returncode == 2 and "not a regular file" in done.stderr, done.stderr
    assert len(_runs(folder)) == 1


def test_run_id_file_still_receives_the_id(folder: Path) -> None:
    done = _sh(folder, "flow.py", "--store", "s.db", "run", "--run-id-file", "id.txt")
    assert done.returncode == 0, done.stderr
    assert (folder / "id.txt").read_text() == "2"


@pytest.mark.parametrize("suffix", ["-journal", "-wal", "-shm"])
def test_dump_never_creates_a_side_file_of_the_store(folder: Path, suffix: str) -> None:
    before = _digest(folder / "s.db")
    target = f"s.db{suffix}"
    done = _sh(folder, "flow.py", "--store", "s.db", "dump", "1/start/1", "blob", "-o", target)
    assert done.returncode == 2 and "is the store dump reads from" in done.stderr, done.stderr
    assert not (folder / target).exists() and _digest(folder / "s.db") == before
    again = _sh(folder, "flow.py", "--store", "s.db", "run", "--quiet")
    assert again.returncode == 0, again.stderr
    assert len(_runs(folder)) == 2


def test_dump_through_a_link_to_the_store_is_refused(folder: Path) -> None:
    (folder / "link.db").symlink_to(folder / "s.db")
    for target in ("s.db-wal", "s.db-shm", "s.db-journal"):
        done = _sh(
            folder, "-m", "asyncflow", "dump", "WriteFlow/1/start/1", "blob", "-o", target,
            "--force", "--store", "link.db",
        )  # fmt: skip
        assert done.returncode == 2 and "is the store dump reads from" in done.stderr, target
        assert not (folder / target).exists()


DUMP_FLOW = textwrap.dedent(
    """\
    from asyncflow import FlowSpec, step

    class Local:
        def __init__(self):
            self.n = 7

    class NoRepr:
        def __repr__(self):
            raise RuntimeError("no repr for you")

    class LocalFlow(FlowSpec):
        @step
        def start(self):
            self.local = Local()
            self.norepr = NoRepr()
            self.next(self.end)

        @step
        def end(self):
            pass

    if __name__ == "__main__":
        LocalFlow()
    """
)


def test_dump_writes_a_value_of_a_class_defined_in_the_flow_file(tmp_path: Path) -> None:
    # Found by an attacker: `dump -o` re-pickled with pickle, which cannot name a class of
    # the flow's __main__, and died with a traceback. It pickles as the store does now.
    (tmp_path / "local_flow.py").write_text(DUMP_FLOW)
    assert _sh(tmp_path, "local_flow.py", "run", "--quiet").returncode == 0
    out = _sh(tmp_path, "-m", "asyncflow", "dump", "LocalFlow/1/start/1", "local", "-o", "v.pkl")
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    load = "import pickle; print(pickle.load(open('v.pkl', 'rb')).n)"
    assert _sh(tmp_path, "-c", load).stdout == "7\n"


def test_dump_of_a_value_whose_repr_raises_prints_one_line(tmp_path: Path) -> None:
    (tmp_path / "local_flow.py").write_text(DUMP_FLOW)
    assert _sh(tmp_path, "local_flow.py", "run", "--quiet").returncode == 0
    for args in (
        ["-m", "asyncflow", "dump", "LocalFlow/1/start/1", "norepr"],
        ["local_flow.py", "dump", "1/start/1", "norepr"],
    ):
        out = _sh(tmp_path, *args)
        assert out.returncode == 0, out.stderr
        assert out.stdout == "<a NoRepr whose repr() raised RuntimeError: no repr for you>\n"


def test_sigterm_while_dump_writes_leaves_no_temporary_file(tmp_path: Path) -> None:
    # Found by an attacker: `dump -o` killed by SIGTERM left its `.dump-*` temporary file.
    # A real SIGTERM, sent from inside the write: the command ends with 143, nothing left.
    import signal

    from asyncflow._cli._dump_file import _write

    target = tmp_path / "value.bin"

    def fill(fh: object) -> None:
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".dump-")]
        os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as stopped:
        _write(str(target), False, fill, None)
    assert stopped.value.code == 143
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) == before


def test_ctrl_c_while_dump_writes_leaves_no_temporary_file(tmp_path: Path) -> None:
    # The README says Ctrl-C leaves no temporary file either: a real SIGINT mid-write.
    import signal

    from asyncflow._cli._dump_file import _write

    def fill(fh: object) -> None:
        os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        _write(str(tmp_path / "value.bin"), False, fill, None)
    assert list(tmp_path.iterdir()) == []
