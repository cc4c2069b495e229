"""``asyncflow serve``: a real server (``python -m asyncflow serve --port 0``) in a
subprocess on a free 127.0.0.1 port, driven with httpx: the run list and its filters,
escaping of hostile names and tags, the run page and its JSON, 404s that say what exists, a
run followed live while another process runs it, the warning for a host beyond loopback, the
message when the ``ui`` extra is missing, a clean stop on SIGINT and SIGTERM, and the store
file's bytes unchanged by a serve session.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests._storefixture import T, write_run

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

ROOT = Path(__file__).resolve().parents[1]
FLOWS = ROOT / "tests" / "flows" / "serve_flows.py"
READY_SECONDS = 60.0
POLL_SECONDS = 90.0
HOSTILE_FLOW = "Evil<script>alert(1)</script>"
HOSTILE_TAG = "<script>alert(2)</script>"
URL_LINE = re.compile(r"^serving (http://\S+/) \(Ctrl-C to stop\)$")


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k != "ASYNCFLOW_STORE"}
    out["PYTHONPATH"] = os.pathsep.join([str(ROOT), *sys.path])
    return out


def run_flow(name: str, store: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(FLOWS), name, "run", "--store", store, "--quiet", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env(),
        timeout=120,
        check=False,
    )


def gated_run(store: str, gate: Path) -> subprocess.Popen[str]:
    """GateFlow running in another process: its last work task waits for the file ``gate``."""
    argv = [sys.executable, str(FLOWS), "GateFlow", "run", "--store", store, "--quiet"]
    return subprocess.Popen(
        [*argv, "--gate", str(gate)],
        cwd=ROOT,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def file_hash(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class Served:
    """A serve process: its URL once it listens; its output once stopped."""

    proc: subprocess.Popen[str]
    url: str = ""
    first: str = ""
    code: int | None = None
    out: str = ""
    err: str = ""
    lines: list[str] = field(default_factory=list)

    def get(self, path: str, **kwargs: Any) -> Any:
        return httpx.get(self.url.rstrip("/") + path, timeout=30.0, **kwargs)

    def stop(self, signum: int = signal.SIGINT) -> None:
        if self.code is None:
            self.proc.send_signal(signum)
            try:
                out, err = self.proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                out, err = self.proc.communicate(timeout=10)
            self.code = self.proc.returncode
            self.out, self.err = self.first + out, err


def start(store: str, *extra: str, option: str = "--store") -> Served:
    argv = [sys.executable, "-m", "asyncflow", "serve", option, store, "--port", "0", *extra]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env()
    )
    served = Served(proc)
    assert proc.stdout is not None
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            served.first = proc.stdout.readline()
            break
        if proc.poll() is not None:
            break
    found = URL_LINE.match(served.first.strip())
    if found is None:
        served.stop()
        raise AssertionError(f"no URL line: {served.out!r} {served.err!r}")
    served.url = found.group(1)
    return served


@contextlib.contextmanager
def serving(store: str, *extra: str) -> Iterator[Served]:
    served = start(store, *extra)
    try:
        yield served
    finally:
        served.stop()
    assert served.code == 0, served.err
    assert "Traceback" not in served.err, served.err


@contextlib.contextmanager
def serving_archive(archive: str) -> Iterator[Served]:
    served = start(archive, option="--archive")
    try:
        yield served
    finally:
        served.stop()
    assert served.code == 0 and served.err == "", served.err


def poll(what: str, probe: Callable[[], Any]) -> Any:
    """``probe()`` again until it returns something true; that value."""
    deadline = time.monotonic() + POLL_SECONDS
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


# --- a store of finished runs, served once for the reading tests ----------------------------


@pytest.fixture(scope="module")
def finished_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    store = str(tmp_path_factory.mktemp("serve") / "runs.db")
    done = run_flow("GateFlow", store, "--tag", "nightly")  # run 1: no gate, it just runs
    assert done.returncode == 0, done.stderr
    done = run_flow("Failing", store)  # run 2
    assert done.returncode == 1, done.stderr
    # run 3: a flow name and tags no class could have, as an archive from elsewhere may hold
    write_run(
        store,
        HOSTILE_FLOW,
        [T("start", stdout="<b>bold</b>"), T("end")],
        tags=[HOSTILE_TAG, "a&b"],
        created_at=time.time() + 1,
    )
    return store


@pytest.fixture(scope="module")
def server(finished_store: str) -> Iterator[Served]:
    with serving(finished_store) as served:
        yield served


def test_the_list_shows_every_run_newest_first_linking_to_its_page(server: Served) -> None:
    listing = server.get("/api/runs").json()
    assert [r["pathspec"] for r in listing["runs"]] == [
        f"{HOSTILE_FLOW}/3",
        "Failing/2",
        "GateFlow/1",
    ]
    assert [r["status"] for r in listing["runs"]] == ["succeeded", "failed", "succeeded"]
    assert listing["runs"][2]["tags"] == ["nightly"]
    assert listing["runs"][1]["url"] == "/runs/Failing/2"
    assert listing["store"] == "runs.db" and listing["total"] == 3
    page = server.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    text = page.text
    assert text.index("/runs/Evil") < text.index('href="/runs/Failing/2"')
    assert text.index('href="/runs/Failing/2"') < text.index('href="/runs/GateFlow/1"')
    assert 'class="badge s-failed">failed<' in text
    assert "started (UTC)" in text and "duration" in text and ">nightly<" in text
    assert 'http-equiv="refresh"' not in text  # nothing is running: no reloading


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"flow": "GateFlow"}, ["GateFlow/1"]),
        ({"status": "failed"}, ["Failing/2"]),
        ({"tag": "nightly"}, ["GateFlow/1"]),
        ({"tag": HOSTILE_TAG}, [f"{HOSTILE_FLOW}/3"]),
        ({"flow": "GateFlow", "status": "failed"}, []),
        ({"flow": "", "status": "", "tag": ""}, [f"{HOSTILE_FLOW}/3", "Failing/2", "GateFlow/1"]),
    ],
)
def test_the_list_filters_by_flow_status_and_tag(
    server: Served, query: dict[str, str], expected: list[str]
) -> None:
    listing = server.get("/api/runs", params=query).json()
    assert [r["pathspec"] for r in listing["runs"]] == expected
    page = server.get("/", params=query).text
    assert page.count("<tr><td>") == len(expected)
    if not expected:
        assert "No run matches the filter." in page
    for name, value in query.items():  # the form shows the filter in force
        if value and name != "tag":
            assert f'<option value="{value}" selected>' in page


def test_a_filter_that_cannot_match_says_why(server: Served) -> None:
    listing = server.get("/api/runs", params={"flow": "Nope"}).json()
    assert listing["runs"] == [] and "no flow named 'Nope'" in listing["problem"]
    page = server.get("/", params={"status": "<b>done</b>"}).text
    assert "&#x27;&lt;b&gt;done&lt;/b&gt;&#x27; is not a run status" in page
    assert "running, succeeded, failed, cancelled, crashed" in page
    assert "<b>done" not in page


def test_hostile_names_and_tags_are_escaped(server: Served) -> None:
    page = server.get("/").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the flow name, as text
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page  # the tag, as text
    assert "a&amp;b" in page
    assert "<script" not in page.lower()  # the list has no script of its own either
    # the link to the run quotes the name; the tag's link filters by it
    assert 'href="/runs/Evil%3Cscript%3Ealert%281%29%3C%2Fscript%3E/3"' in page
    assert "/?tag=%3Cscript%3Ealert%282%29%3C%2Fscript%3E" in page
    raw = server.get("/api/runs").text
    assert "<" not in raw and ">" not in raw and "&" not in raw
    assert json.loads(raw)["runs"][0]["tags"] == [HOSTILE_TAG, "a&b"]


def test_every_response_has_a_policy_and_no_outside_url(server: Served) -> None:
    for path in ("/", "/api/runs", "/nothing", "/runs/GateFlow/99", "/api/runs/Nope/1"):
        response = server.get(path)
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "style-src 'unsafe-inline'" in policy
        assert "script-src" not in policy, path  # no script on these pages
        assert response.headers["x-content-type-options"] == "nosniff"
        assert not re.search(r"(src|href|action)=[\"']?(https?:)?//", response.text), path


def test_a_request_for_another_host_is_refused(server: Served) -> None:
    port = server.url.rsplit(":", 1)[1].strip("/")
    refused = server.get("/api/runs", headers={"Host": "attacker.example"})
    assert refused.status_code == 421
    assert "attacker.example" in refused.text
    assert "--allow-host NAME" in refused.text
    assert "Failing" not in refused.text
    hosts = (f"localhost:{port}", f"127.0.0.1:{port}", "LOCALHOST", f"127.0.0.2:{port}", "[::1]")
    for host in hosts:  # localhost and any IP address (a page elsewhere cannot send those)
        assert server.get("/api/runs", headers={"Host": host}).status_code == 200, host


def test_the_run_page_is_the_report_with_live_updates_from_the_api(server: Served) -> None:
    page = server.get("/runs/GateFlow/1")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    live = re.search(r'<script type="application/json" id="live">(.*?)</script>', page.text)
    assert live is not None  # where and how often the page fetches its model again
    assert json.loads(live.group(1)) == {"url": "/api/runs/GateFlow/1", "interval_ms": 1000}
    assert not re.search(r"(src|href|action)=[\"']?(https?:)?//", page.text)
    policy = page.headers["content-security-policy"]
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page.text, re.DOTALL)
    code = [body for attrs, body in scripts if "application/json" not in attrs]
    assert code, "the report page has its script"
    for body in code:  # each inline script is allowed by its hash, and nothing else
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy
    assert "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";")[0]
    assert "connect-src 'self'" in policy
    model = server.get("/api/runs/GateFlow/1").json()
    assert model["format"] == "asyncflow-report"
    assert model["run"]["pathspec"] == "GateFlow/1" and model["run"]["status"] == "succeeded"
    assert [s["name"] for s in model["steps"]] == ["start", "work", "join", "end"]
    assert model["run"]["tags"] == ["nightly"]
    assert len(model["timeline"]) == 6  # start, three work tasks, join, end


def test_the_run_page_of_a_hostile_run_keeps_its_strings_as_data(server: Served) -> None:
    path = "/runs/Evil%3Cscript%3Ealert%281%29%3C%2Fscript%3E/3"
    page = server.get(path)
    assert page.status_code == 200, page.text
    assert "<script>alert" not in page.text and "<b>bold" not in page.text
    model = server.get("/api" + path).json()
    assert model["run"]["flow"] == HOSTILE_FLOW
    assert HOSTILE_TAG in model["run"]["tags"]


@pytest.mark.parametrize("api", [False, True])
def test_an_unknown_run_is_a_404_saying_what_exists(server: Served, api: bool) -> None:
    prefix = "/api" if api else ""
    missing_run = server.get(f"{prefix}/runs/GateFlow/99")
    assert missing_run.status_code == 404
    text = missing_run.json()["message"] if api else missing_run.text
    assert "has no run 99" in text and "its runs, newest first: 1" in text
    missing_flow = server.get(f"{prefix}/runs/%3Cb%3ENope/1")
    assert missing_flow.status_code == 404
    text = missing_flow.json()["message"] if api else missing_flow.text
    assert "its flows are:" in text and "GateFlow" in text and "Failing" in text
    if not api:
        assert "&#x27;&lt;b&gt;Nope&#x27;" in text and "<b>Nope" not in text
    nothing = server.get(f"{prefix}/somewhere")
    assert nothing.status_code == 404
    assert "the runs are listed at /" in nothing.text


def test_only_get_is_answered(server: Served) -> None:
    response = httpx.post(server.url, timeout=30.0)
    assert response.status_code == 405
    assert "only answers GET requests" in response.text


# --- a run followed live ----------------------------------------------------------------------


def test_a_run_going_in_another_process_shows_live(tmp_path: Path) -> None:
    store = str(tmp_path / "live.db")
    assert run_flow("Failing", store).returncode == 1  # the store exists before serving
    gate = tmp_path / "gate"
    flow = gated_run(store, gate)
    try:
        with serving(store) as served:

            def running() -> list[dict[str, Any]]:
                query = {"flow": "GateFlow", "status": "running"}
                return list(served.get("/api/runs", params=query).json()["runs"])

            (row,) = poll("the run to be listed as running", running)
            assert row["finished_at"] is None
            page = served.get("/").text
            assert 'class="badge s-running">running<' in page
            assert '<meta http-equiv="refresh" content="5">' in page  # reloads meanwhile
            api = f"/api/runs/GateFlow/{row['id']}"

            def work_tasks() -> dict[str, Any] | None:
                model: dict[str, Any] = served.get(api).json()
                steps = {s["name"]: s for s in model["steps"]}
                done = steps.get("work", {}).get("n_tasks", 0) - steps.get("work", {}).get(
                    "n_running", 0
                )
                return model if done >= 2 else None

            model = poll("the first work tasks", work_tasks)
            assert model["run"]["status"] == "running"
            assert model["run"]["finished_at"] is None
            assert "join" not in {s["name"] for s in model["steps"] if s["n_tasks"]}
            page = served.get(f"/runs/GateFlow/{row['id']}")
            assert page.status_code == 200 and api in page.text
            gate.write_text("go")

            def finished() -> dict[str, Any] | None:
                model: dict[str, Any] = served.get(api).json()
                return model if model["run"]["status"] != "running" else None

            model = poll("the run to finish", finished)
            assert model["run"]["status"] == "succeeded"
            assert len(model["timeline"]) == 6
            assert running() == []
        assert flow.wait(timeout=60) == 0
    finally:
        gate.write_text("go")
        if flow.poll() is None:
            flow.kill()
        flow.communicate(timeout=30)


# --- the command itself -----------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_it_cleanly(finished_store: str, signum: int) -> None:
    served = start(finished_store)
    with httpx.Client(timeout=30.0) as client:  # a connection kept open, as a live page's
        assert client.get(served.url).status_code == 200
        served.stop(signum)
    assert served.code == 0
    name = signal.Signals(signum).name
    assert served.out.splitlines() == [
        f"serving {served.url} (Ctrl-C to stop)",
        f"stopped serving {served.url} ({name})",
    ]
    assert served.err == ""


def test_it_listens_on_loopback_by_default_and_warns_beyond(finished_store: str) -> None:
    with serving(finished_store) as served:
        assert served.url.startswith("http://127.0.0.1:")
    assert served.err == ""
    with serving(finished_store, "--host", "0.0.0.0") as served:
        assert served.url.startswith("http://0.0.0.0:")
        port = served.url.rsplit(":", 1)[1]
        answer = httpx.get(f"http://127.0.0.1:{port}api/runs", timeout=30.0)
        assert answer.status_code == 200
        # beyond this machine it answers to its IP addresses and this machine's names, and
        # still never to another name (DNS rebinding: found by an attacker)
        assert served.get("/api/runs", headers={"Host": "10.0.0.7"}).status_code == 200
        own = {"Host": socket.gethostname()}
        assert served.get("/api/runs", headers=own).status_code == 200
        assert served.get("/api/runs", headers={"Host": "evil.example"}).status_code == 421
    (warning,) = served.err.splitlines()
    assert warning.startswith("asyncflow serve: warning: listening on http://0.0.0.0:")
    assert "anyone who can reach it can read every run of" in warning
    assert finished_store in warning


def test_allow_host_adds_a_name_it_answers_to(finished_store: str) -> None:
    with serving(finished_store, "--allow-host", "Box.Lan") as served:
        assert served.get("/api/runs", headers={"Host": "box.lan:80"}).status_code == 200
        assert served.get("/api/runs", headers={"Host": "other.lan"}).status_code == 421
    assert served.err == ""


def test_the_default_address_is_port_8765_on_loopback() -> None:
    from asyncflow._cli._store_cmds import build_parser

    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port) == ("127.0.0.1", 8765)


def test_a_port_in_use_is_refused_on_one_line(finished_store: str) -> None:
    with serving(finished_store) as served:
        port = served.url.rsplit(":", 1)[1].strip("/")
        done = subprocess.run(
            [sys.executable, "-m", "asyncflow", "serve", "--store", finished_store, "--port", port],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env(),
            timeout=60,
            check=False,
        )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "--port 0 picks a free one" in done.stderr


@pytest.mark.parametrize("port", ["-1", "65536", "http"])
def test_a_bad_port_is_a_usage_error(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    from asyncflow._cli import main

    assert main(["serve", "--port", port]) == 2
    err = capsys.readouterr().err
    assert err.startswith("asyncflow: error: argument --port: must be a port number")
    assert err.count("\n") == 1


def test_a_missing_store_is_refused_before_listening(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "asyncflow", "serve", "--store", str(tmp_path / "no.db")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("asyncflow: error: there is no store at")
    assert not (tmp_path / "no.db").exists()


BLOCK_UI = (
    "import sys\n"
    "sys.modules[{module!r}] = None  # as if asyncflow[ui] were not installed\n"
    "from asyncflow._cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


@pytest.mark.parametrize("module", ["starlette", "uvicorn"])
def test_without_the_ui_extra_it_says_what_to_install(finished_store: str, module: str) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            BLOCK_UI.format(module=module),
            "serve",
            "--store",
            finished_store,
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert f"asyncflow serve needs Starlette and uvicorn, and {module} cannot be" in done.stderr
    assert "pip install 'asyncflow[ui]'" in done.stderr


def test_the_parser_does_not_import_the_ui() -> None:
    script = (
        "import sys\n"
        "from asyncflow._cli._store_cmds import build_parser\n"
        "build_parser()\n"
        "print(sorted(m for m in ('starlette', 'uvicorn') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env(),
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "[]"


# --- the store is only read ---------------------------------------------------------------------


def test_a_serve_session_leaves_the_store_bytes_unchanged(tmp_path: Path) -> None:
    store = str(tmp_path / "kept.db")
    assert run_flow("GateFlow", store, "--tag", "t").returncode == 0
    assert run_flow("Failing", store).returncode == 1
    before = file_hash(store)
    with serving(store) as served:
        for path in (
            "/",
            "/?status=failed",
            "/api/runs",
            "/runs/GateFlow/1",
            "/api/runs/GateFlow/1",
            "/api/runs/Failing/2",
            "/runs/GateFlow/7",
        ):
            assert served.get(path).status_code in (200, 404)
    assert file_hash(store) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.db"]


def test_an_archive_is_served_in_place(finished_store: str, tmp_path: Path) -> None:
    archive = str(tmp_path / "shared.afa")
    export = [sys.executable, "-m", "asyncflow", "export", "GateFlow/1", "Failing/2"]
    done = subprocess.run(
        [*export, "-o", archive, "--store", finished_store],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    before = file_hash(archive)
    with serving_archive(archive) as served:
        listing = served.get("/api/runs").json()
        assert [r["pathspec"] for r in listing["runs"]] == ["Failing/2", "GateFlow/1"]
        assert listing["store"] == "shared.afa"
        model = served.get("/api/runs/GateFlow/1").json()
        assert model["source"] == {"kind": "archive", "name": "shared.afa"}
        assert served.get("/runs/GateFlow/1").status_code == 200
    assert file_hash(archive) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared.afa"]


def test_archive_and_store_together_or_a_store_as_archive_are_refused(
    finished_store: str,
) -> None:
    for extra in (["--store", finished_store], []):
        done = subprocess.run(
            [sys.executable, "-m", "asyncflow", "serve", "--archive", finished_store, *extra],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env(),
            timeout=60,
            check=False,
        )
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
        expected = "give --store PATH (a store) or --archive FILE" if extra else "not a run archive"
        assert expected in done.stderr, done.stderr


def test_store_reads_run_off_the_server_loop(tmp_path: Path) -> None:
    """While a read waits on a store another process has locked, the server still answers
    a request that reads nothing: the read waits in a worker thread, not on the loop."""
    store = str(tmp_path / "locked.db")
    assert run_flow("GateFlow", store).returncode == 0
    order: list[str] = []
    with serving(store) as served:
        lock = sqlite3.connect(store, isolation_level=None)
        try:
            lock.execute("PRAGMA locking_mode = EXCLUSIVE")
            lock.execute("BEGIN EXCLUSIVE")
            lock.execute("CREATE TABLE scratch_lock (x)")  # written, never committed
            answers: list[int] = []
            reader = threading.Thread(
                target=lambda: answers.append(served.get("/api/runs").status_code)
            )
            reader.start()
            reader.join(1.0)  # it is waiting on the lock (or has not started: no harm)
            assert served.get("/nothing").status_code == 404
            order.append("answered while locked")
            assert reader.is_alive(), "the locked read returned before the lock was released"
        finally:
            lock.execute("ROLLBACK")
            lock.close()
            order.append("released")
        reader.join(60)
        assert answers == [200]
    assert order == ["answered while locked", "released"]


# --- in a real browser ----------------------------------------------------------------------------


def test_a_browser_follows_a_running_run_through_the_server(tmp_path: Path) -> None:
    """Headless Chromium on the served pages: the list draws with nothing on the console; the
    page of a run going in another process draws, fetches the run again from the server (the
    server's policy lets its script run and fetch) and says it is live; once the run ended,
    its page says so and fetches nothing."""
    from tests import _browser as browser

    browser.chromium()  # skips without chromium (fails under CI)
    store = str(tmp_path / "browser.db")
    assert run_flow("Failing", store).returncode == 1
    gate = tmp_path / "gate"
    flow = gated_run(store, gate)
    try:
        with serving(store) as served:
            api = "/api/runs/GateFlow/2"

            def work_done() -> bool:
                answer = served.get(api)
                if answer.status_code != 200:
                    return False
                steps = {s["name"]: s for s in answer.json()["steps"]}
                work = steps.get("work", {"n_tasks": 0, "n_running": 0})
                return bool(work["n_tasks"] - work["n_running"] >= 2)

            poll("two work tasks", work_done)
            listing = browser.dump_dom(served.url, budget_ms=1000)
            assert listing.console == [], listing.console
            assert "GateFlow" in listing.dom.find("table").text()

            page = browser.dump_dom(served.url + "runs/GateFlow/2", budget_ms=4000)
            assert page.console == [], page.console
            app = page.app
            assert app.attrs.get("data-errors") == "0"
            assert "data-csp-violations" not in app.attrs
            assert int(app.attrs["data-ready"]) >= 2  # drawn, then drawn again from the API
            assert app.find("header", "run").find(cls="badge").text() == "running"
            assert app.by_id("live-state") is not None
            assert app.by_id("live-state").text() == "live"  # type: ignore[union-attr]

            gate.write_text("go")
            poll("the run to end", lambda: served.get(api).json()["run"]["status"] != "running")
            page = browser.dump_dom(served.url + "runs/GateFlow/2", budget_ms=3000)
            assert page.console == [], page.console
            app = page.app
            assert app.attrs.get("data-ready") == "1"  # a finished run: drawn once
            assert app.find("header", "run").find(cls="badge").text() == "succeeded"
            assert app.by_id("live-state").text() == "final"  # type: ignore[union-attr]
        assert flow.wait(timeout=60) == 0
    finally:
        gate.write_text("go")
        if flow.poll() is None:
            flow.kill()
        flow.communicate(timeout=30)
