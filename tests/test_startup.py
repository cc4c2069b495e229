"""What importing asyncflow and defining a flow load: only what defining needs.

``import asyncflow`` resolves its public names on first use (PEP 562), and a flow's class
imports the runtime, the client, asyncio and SQLite only when it runs. Each check runs in a
new interpreter and reads its ``sys.modules``, so an import added at the top of a module on
the way turns a test red (not a timing test: the figures are benchmarks/bench_startup.py's).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import asyncflow
from asyncflow import NotSupportedError

ROOT = Path(__file__).resolve().parent.parent

# Not needed to import asyncflow or to define a flow; each costs milliseconds to import.
HEAVY = [
    "asyncflow._runtime._run",
    "asyncflow._runtime._attempt",
    "asyncflow._client",
    "asyncflow._client._data",
    "asyncflow._store._db",
    "asyncflow._store._writer",
    "asyncflow._codecs",
    "asyncflow._cli._flow_cmds",
    "asyncio",
    "anyio",
    "ssl",
    "sqlite3",
    "aiosqlite",
    "numpy",
    "cloudpickle",
    "msgpack",
    "importlib.metadata",
    "email",
    "logging",
    "concurrent.futures",
    "argparse",
]

DEFINE = """\
from asyncflow import FlowSpec, Parameter, step, retry, catch, card, project, Config


@project(name="startup")
class Defined(FlowSpec):
    n = Parameter("n", default=1)

    @retry(times=1)
    @step
    def start(self):
        self.next(self.end)

    @catch(var="oops")
    @step
    def end(self):
        pass
"""


def loaded(code: str, cwd: Path | None = None) -> set[str]:
    """The modules a new interpreter has imported after running ``code``."""
    probe = code + "\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))\n"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        check=True,
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_import_asyncflow_loads_no_heavy_module() -> None:
    # the definition hook is installed all the same
    modules = loaded("import asyncflow, sys\nassert sys.excepthook._asyncflow")
    assert not [m for m in HEAVY if m in modules]


def test_defining_a_flow_loads_no_heavy_module() -> None:
    modules = loaded(DEFINE)
    assert not [m for m in HEAVY if m in modules]
    assert "asyncflow._flowspec" in modules


def test_reading_runs_imports_no_runtime_and_no_command_line(tmp_path: Path) -> None:
    # A program that only reads runs (README, Benchmarks) pays for the client, not for
    # running flows, the command line or the run report.
    store = tmp_path / "s.db"
    flow = tmp_path / "reads_flow.py"
    flow.write_text(
        "from asyncflow import FlowSpec, step\n\n\nclass ReadsFlow(FlowSpec):\n"
        "    @step\n    def start(self):\n        self.x = 41\n        self.next(self.end)\n\n"
        "    @step\n    def end(self):\n        self.y = self.x + 1\n\n\n"
        "if __name__ == '__main__':\n    ReadsFlow()\n",
        encoding="utf-8",
    )
    subprocess.run(
        [sys.executable, str(flow), "run", "--store", str(store)],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    modules = loaded(
        "import asyncflow\n"
        f"with asyncflow.Flow('ReadsFlow', store={str(store)!r}) as flow:\n"
        "    assert flow.latest_run['end'].task.data.y == 42\n"
    )
    assert "asyncflow._client" in modules
    heavy = ("asyncflow._runtime", "asyncflow._cli.", "asyncflow._report")
    # (asyncflow._cli._entry, the definition hook, comes with `import asyncflow`)
    runtime = sorted(m for m in modules if m.startswith(heavy) and m != "asyncflow._cli._entry")
    assert not runtime, runtime


# Not needed by `python flow.py run` of a flow without @pypi/@conda, resume or spin.
NOT_FOR_A_RUN = [
    "asyncflow._store._gc",
    "asyncflow._runtime._resume",
    "asyncflow._store._resume_reads",
    "asyncflow._runtime._spin",
    "asyncflow._runtime._jobs",
    "asyncflow._runtime._executors._dask",
    "asyncflow._cli._store_cmds",
    "asyncflow._client._archive",
    "asyncflow._client._tidy",
    "importlib.metadata",
    # a run that succeeds reads the runtime's record of it, not the client's Run
    "asyncflow._client",
    "asyncflow._client._data",
    "aiosqlite",
    # the commands behind `dump` and `logs`
    "asyncflow._cli._pathspecs",
    "asyncflow._cli._watch_cmds",
    # cards' forms (no @card); the pretty-printer of `dump` and `show`
    "asyncflow._spec._card_form",
    "pprint",
]


def test_running_a_flow_file_imports_what_it_needs(tmp_path: Path) -> None:
    """The run finds what it uses, and imports nothing it does not use."""
    flow = tmp_path / "hello_flow.py"
    flow.write_text(
        "import atexit, json, sys\n"
        "out = open('modules.json', 'w')\n"
        "atexit.register(lambda: (out.write(json.dumps(sorted(sys.modules))), out.close()))\n"
        "from asyncflow import FlowSpec, step\n\n\nclass HelloFlow(FlowSpec):\n"
        "    @step\n    def start(self):\n        self.msg = 'hi'\n        self.next(self.end)\n\n"
        "    @step\n    def end(self):\n        print(self.msg)\n\n\n"
        "if __name__ == '__main__':\n    HelloFlow()\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, str(flow), "run", "--store", str(tmp_path / "s.db")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "hi" in done.stdout
    modules = set(json.loads((tmp_path / "modules.json").read_text()))
    assert "asyncflow._runtime._run" in modules
    assert not [m for m in NOT_FOR_A_RUN if m in modules]


def test_every_public_name_resolves_to_its_module() -> None:
    lazy: dict[str, str] = asyncflow._LAZY  # type: ignore[attr-defined]
    assert set(lazy) | {"__version__"} == set(asyncflow.__all__) | {"__version__"}
    for name, module in lazy.items():
        value = getattr(asyncflow, name)
        owner = sys.modules[f"asyncflow{module}"]
        assert value is getattr(owner, name), name
    assert set(asyncflow.__all__) <= set(dir(asyncflow))


def test_from_import_of_every_public_name_in_a_new_interpreter() -> None:
    names = ", ".join(asyncflow.__all__)
    modules = loaded(f"from asyncflow import {names}")
    assert "asyncflow._runtime._run" in modules  # FlowSpec's methods are reachable


def test_type_checkers_see_the_same_names() -> None:
    """The imports under TYPE_CHECKING name exactly the modules _LAZY resolves at run time."""
    tree = ast.parse((ROOT / "asyncflow" / "__init__.py").read_text(encoding="utf-8"))
    seen: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom)
                for alias in imp.names:
                    assert alias.asname == alias.name  # re-exported for type checkers
                    seen[alias.name] = "." * imp.level + (imp.module or "")
    assert seen == asyncflow._LAZY  # type: ignore[attr-defined]


def test_refused_and_unknown_names_still_fail() -> None:
    with pytest.raises(NotSupportedError):
        from asyncflow import S3  # type: ignore[attr-defined]  # noqa: F401
    with pytest.raises(AttributeError, match="no attribute 'nonexistent_name'"):
        asyncflow.nonexistent_name  # type: ignore[attr-defined]  # noqa: B018


def test_script_entry_without_asyncio_imported(tmp_path: Path) -> None:
    """``XFlow()`` at the bottom of a flow file runs the command line even though asyncio is
    not imported yet when the constructor asks whether a loop is running."""
    flow = tmp_path / "entry_flow.py"
    flow.write_text(
        "import sys\nfrom asyncflow import FlowSpec, step\n\n\nclass EntryFlow(FlowSpec):\n"
        "    @step\n    def start(self):\n        self.next(self.end)\n\n"
        "    @step\n    def end(self):\n        pass\n\n\n"
        "if __name__ == '__main__':\n"
        "    assert 'asyncio' not in sys.modules\n"
        "    EntryFlow()\n"
        "    raise SystemExit('the command line did not run')\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, str(flow), "check"], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr


def test_bench_startup_quick(tmp_path: Path) -> None:
    """The benchmark runs (a smoke test: its figures are not checked)."""
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_startup.py"),
            "--quick",
            "--dir",
            str(tmp_path),
            "--json",
            str(tmp_path / "out.json"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    figures = {f["name"] for f in json.loads((tmp_path / "out.json").read_text())["figures"]}
    assert "python hello.py run: process wall" in figures


def test_script_entry_refused_with_a_loop_running(tmp_path: Path) -> None:
    """Top-level code of the ``__main__`` script running inside an event loop (exec'd from a
    coroutine) is an embedding: ``XFlow()`` there reads no ``sys.argv`` (asyncio is
    imported, so the check asks the loop)."""
    flow = tmp_path / "looped_flow.py"
    flow.write_text(
        "import asyncio\nfrom asyncflow import FlowSpec, step\n\n\nclass LoopedFlow(FlowSpec):\n"
        "    @step\n    def start(self):\n        self.next(self.end)\n\n"
        "    @step\n    def end(self):\n        pass\n\n\n"
        "async def main():\n"
        "    exec(compile('LoopedFlow()\\nprint(\"kept\")\\n', __file__, 'exec'), globals())\n\n\n"
        "if __name__ == '__main__':\n"
        "    asyncio.run(main())\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, str(flow), "run"], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "kept"
    assert not (tmp_path / "asyncflow.db").exists()


def test_schema_check_normalizes_whitespace_and_sees_a_changed_statement(tmp_path: Path) -> None:
    """The schema check, asked again and again on one connection: spacing differences are
    not problems, a changed statement is, every time."""
    import sqlite3

    from asyncflow._store import _schema

    path = tmp_path / "spaced.db"
    conn = sqlite3.connect(path, isolation_level=None)
    _schema.migrate(conn, 0)
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute(
        "UPDATE sqlite_master SET sql = replace(replace(sql, ' ', '  \n'), '(', ' ( ') "
        "WHERE name = 'runs'"
    )
    conn.close()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for _ in range(3):
            assert _schema.schema_problem(conn, _schema.SCHEMA_VERSION) is None
        conn.execute("PRAGMA writable_schema = ON")
        conn.execute(
            "UPDATE sqlite_master SET sql = replace(sql, 'NOT NULL', '') WHERE name = 'store_info'"
        )
    finally:
        conn.close()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for _ in range(3):
            assert "changed table 'store_info'" in str(
                _schema.schema_problem(conn, _schema.SCHEMA_VERSION)
            )
    finally:
        conn.close()
    long = "CREATE TABLE t ( a ,\n b )" + " " * 5000
    assert _schema._normal(long) == _schema._normal("CREATE TABLE t ( a ,\n b )")
    assert _schema._normal(None) is None


# Eight threads use asyncflow for the first time at once: half run a flow (the runtime and
# the client are imported on the way), half read a public name and open the client. Every
# first-use import takes asyncflow._imports.IMPORTS, or two threads loading packages that
# import each other met Python's import deadlock detector (about 1 process in 3 failed).
THREADS_FIRST_USE = """
import asyncio, sys, threading
import asyncflow as af

class TFlow(af.FlowSpec):
    @af.step
    def start(self):
        self.x = 1
        self.next(self.end)

    @af.step
    async def end(self):
        pass

NAMES = ["Flow", "gc", "stats", "Runner", "namespace", "current", "export_runs", "Run"]
errors = []
barrier = threading.Barrier(8)

def go(i):
    barrier.wait()
    try:
        if i % 2:
            asyncio.run(TFlow(store=sys.argv[1], echo=False).run())
        else:
            getattr(af, NAMES[i])
            with af.Flow("TFlow", store=sys.argv[1]):
                pass
    except af.AsyncflowError:
        pass  # the store may not exist yet, or have no run yet
    except BaseException as exc:
        errors.append(f"{type(exc).__name__}: {exc}")

threads = [threading.Thread(target=go, args=(i,)) for i in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(repr(errors))
"""


def test_threads_using_asyncflow_for_the_first_time_at_once(tmp_path: Path) -> None:
    children = [
        subprocess.Popen(
            [sys.executable, "-c", THREADS_FIRST_USE, str(tmp_path / f"s{i}.db")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for i in range(24)
    ]
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        assert out.strip() == "[]", out
