"""@project, system tags and branches as Metaflow users know them (issue 11): the corpus flows
run as a user runs them (`python flow.py [--branch X | --production] run`), then the client
and the `asyncflow` command read what the runs recorded (README, "Projects, system tags and
namespaces")."""

from __future__ import annotations

import contextlib
import platform
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import asyncflow
from asyncflow import (
    Flow,
    FlowSpec,
    FlowValidationError,
    UsageError,
    current,
    export_runs,
    import_archive,
    project,
    step,
)
from asyncflow._spec._project import local_user
from tests._mfcorpus import run_flow

USER = {"ASYNCFLOW_USER": "alice"}
SYSTEM_KEYS = ("user", "runtime", "python_version", "date", "asyncflow_version")


def cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asyncflow", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def played(tmp_path: Path, *options: str) -> Any:
    """Run the corpus project flow with ``options`` before `run`; its latest run."""
    done = run_flow("project_flow.py", *options, "run", cwd=tmp_path, env=USER)
    assert done.returncode == 0, done.stderr
    return Flow("PlayListFlow", tmp_path / "asyncflow.db").latest_run


# --- the corpus flow, as a user runs it ------------------------------------------------------


def test_a_project_flow_runs_on_the_users_branch_and_records_it(tmp_path: Path) -> None:
    done = run_flow("project_flow.py", "run", cwd=tmp_path, env=USER)
    assert done.returncode == 0, done.stderr
    assert "(project movies, branch user.alice)" in done.stdout
    run = Flow("PlayListFlow", tmp_path / "asyncflow.db").latest_run
    assert run is not None and run.successful
    start = run["start"].task.data
    assert start.seen_project == "movies"
    assert start.seen_branch == "user.alice"
    assert start.seen_flow_name == "movies.user.alice.PlayListFlow"
    assert start.seen_namespace == "user:alice"
    assert start.seen_user_branch is True and start.seen_production is False
    # every task of the run, foreach tasks too, sees the same project and branch
    assert run["join"].task.data.wheres == [
        ("comedy", "movies", "user.alice"),
        ("drama", "movies", "user.alice"),
    ]
    assert run.project_name == "movies" and run.branch_name == "user.alice"
    assert {"project:movies", "project_branch:user.alice", "user:alice"} <= run.system_tags


@pytest.mark.parametrize(
    ("options", "branch", "production"),
    [
        (("--branch", "nightly_test"), "test.nightly_test", False),
        (("--production",), "prod", True),
        (("--branch", "v2", "--production"), "prod.v2", True),
    ],
)
def test_branch_and_production_before_the_command_choose_the_branch(
    tmp_path: Path, options: tuple[str, ...], branch: str, production: bool
) -> None:
    run = played(tmp_path, *options)
    data = run["start"].task.data
    assert data.seen_branch == branch == run.branch_name
    assert data.seen_flow_name == f"movies.{branch}.PlayListFlow"
    assert data.seen_production is production
    assert data.seen_user_branch is False
    assert f"project_branch:{branch}" in run.system_tags


def test_a_resumed_run_records_the_branch_it_was_resumed_on(tmp_path: Path) -> None:
    first = played(tmp_path, "--branch", "one")
    done = run_flow("project_flow.py", "--branch", "two", "resume", cwd=tmp_path, env=USER)
    assert done.returncode == 0, done.stderr
    resumed = Flow("PlayListFlow", tmp_path / "asyncflow.db").latest_run
    assert resumed is not None and resumed.origin_run_id == first.id
    assert resumed.branch_name == "test.two" and first.branch_name == "test.one"


def test_a_bad_branch_name_is_one_line_and_exit_2_before_anything_runs(tmp_path: Path) -> None:
    done = run_flow("project_flow.py", "--branch", "Not-OK", "run", cwd=tmp_path, env=USER)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "'Not-OK' may hold only lowercase letters, digits and underscores" in done.stderr
    assert not (tmp_path / "asyncflow.db").exists()


def test_a_flow_without_project_has_a_namespace_and_no_branch_option(tmp_path: Path) -> None:
    done = run_flow("project_plain_flow.py", "run", cwd=tmp_path, env=USER)
    assert done.returncode == 0, done.stderr
    run = Flow("PlainFlow", tmp_path / "asyncflow.db").latest_run
    assert run is not None
    assert run["start"].task.data.seen == {
        "namespace": "user:alice",
        "username": "alice",
        "project_name": None,
        "branch_name": None,
        "project_flow_name": None,
    }
    assert run.project_name is None and run.branch_name is None
    assert not any(t.startswith("project") for t in run.system_tags)
    # --branch belongs to @project flows: here it is refused in one line, nothing runs
    refused = run_flow("project_plain_flow.py", "--branch", "x", "run", cwd=tmp_path, env=USER)
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1
    assert "flow PlainFlow has no @project, so it has no branches" in refused.stderr
    assert len(Flow("PlainFlow", tmp_path / "asyncflow.db").runs()) == 1


def test_asyncflow_runs_and_show_print_the_project_branch_and_system_tags(
    tmp_path: Path,
) -> None:
    played(tmp_path, "--branch", "x")
    listing = cli("runs", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    header, row = listing.stdout.splitlines()[:2]
    assert "project/branch" in header.split("  ")
    assert "movies/test.x" in row.split()
    shown = cli("show", "PlayListFlow/1", cwd=tmp_path)
    assert "project   movies (branch test.x)" in shown.stdout
    system = next(line for line in shown.stdout.splitlines() if line.startswith("system "))
    assert "user:alice" in system and "runtime:dev" in system


# --- system tags ------------------------------------------------------------------------------


def test_every_run_records_metaflows_local_system_tags(tmp_path: Path) -> None:
    before = time.time()
    run = played(tmp_path)
    tags = run.system_tags
    assert isinstance(tags, frozenset)
    assert "user:alice" in tags and "runtime:dev" in tags
    assert f"python_version:{platform.python_version()}" in tags
    assert f"asyncflow_version:{asyncflow.__version__}" in tags
    days = {time.strftime("%Y-%m-%d", time.gmtime(t)) for t in (before, time.time())}
    assert any(f"date:{day}" in tags for day in days)
    assert not any(t.startswith("metaflow_version:") for t in tags)


def test_run_tags_stay_the_user_tags_and_system_tags_come_apart(tmp_path: Path) -> None:
    done = run_flow("project_flow.py", "run", "--tag", "nightly", cwd=tmp_path, env=USER)
    assert done.returncode == 0, done.stderr
    run = Flow("PlayListFlow", tmp_path / "asyncflow.db").latest_run
    assert run is not None
    assert run.tags == run.user_tags == frozenset({"nightly"})
    assert run.system_tags.isdisjoint(run.tags)
    # a system tag is a tag like any other to find runs with
    flow = Flow("PlayListFlow", tmp_path / "asyncflow.db")
    assert [r.id for r in flow.runs("project_branch:user.alice")] == [run.id]
    assert flow.runs("project_branch:prod") == []


def _tags_in_file(store: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(store)) as conn:
        return {str(t) for (t,) in conn.execute("SELECT tag FROM run_tags")}


def test_system_tags_cannot_be_removed_by_the_client_nor_the_command(tmp_path: Path) -> None:
    run = played(tmp_path)
    store = tmp_path / "asyncflow.db"
    before = _tags_in_file(store)
    with pytest.raises(UsageError) as info:
        run.remove_tag("keep", "project:movies")
    assert "cannot remove tag 'project:movies': it is a system tag" in str(info.value)
    assert _tags_in_file(store) == before  # not even "keep", nothing was written
    done = cli("tag", "PlayListFlow/1", "user:alice", "--remove", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("asyncflow: error: cannot remove tag 'user:alice'")
    assert _tags_in_file(store) == before
    assert "user:alice" in Flow("PlayListFlow", store)["1"].system_tags


@pytest.mark.anyio
async def test_system_tags_cannot_be_removed_by_the_async_client(tmp_path: Path) -> None:
    run = played(tmp_path)
    with pytest.raises(UsageError, match="system tags cannot be removed"):
        await run.aremove_tag("runtime:dev")
    assert (
        "runtime:dev" in (await Flow("PlayListFlow", tmp_path / "asyncflow.db").aget(1)).system_tags
    )


def test_a_user_tag_may_not_pose_as_a_system_tag(tmp_path: Path) -> None:
    run = played(tmp_path)
    for tag in ("user:mallory", "project:other", "date:1999-01-01"):
        with pytest.raises(UsageError, match="keeps for the system tags"):
            run.add_tag(tag)
    with pytest.raises(UsageError, match="choose a tag without that prefix"):
        Tiny(store=str(tmp_path / "x.db"), tags=["project_branch:prod"])
    done = run_flow("project_flow.py", "run", "--tag", "user:mallory", cwd=tmp_path, env=USER)
    assert done.returncode == 2 and "'user:mallory' starts with 'user:'" in done.stderr
    # a colon alone makes no system tag
    run.add_tag("team:recs", "user")
    assert {"team:recs", "user"} <= run.tags


def test_system_tags_travel_in_archives(tmp_path: Path) -> None:
    run = played(tmp_path, "--branch", "shared")
    archive = tmp_path / "runs.afa"
    export_runs(archive, [run])
    in_archive = Flow("PlayListFlow", archive)["1"]
    assert in_archive.system_tags == run.system_tags
    other = tmp_path / "other.db"
    import_archive(archive, store=other)
    imported = Flow("PlayListFlow", other).latest_run
    assert imported is not None
    assert imported.system_tags == run.system_tags
    assert imported.branch_name == "test.shared" and imported.tags == run.tags


def test_runs_recorded_before_system_tags_read_back_with_none(tmp_path: Path) -> None:
    run = played(tmp_path)
    store = tmp_path / "asyncflow.db"
    with contextlib.closing(sqlite3.connect(store)) as conn, conn:  # as an older asyncflow left it
        conn.execute("DELETE FROM run_tags")
    old = Flow("PlayListFlow", store)[run.id]
    assert old.system_tags == frozenset() and old.tags == frozenset()
    assert old.project_name is None and old.branch_name is None
    assert old["end"].task.data.playlist == ["comedy", "drama"]


# --- in process: the decorator and the constructor -------------------------------------------


@project(name="movies")
class Tiny(FlowSpec):
    @step
    async def start(self) -> None:
        self.seen = (current.project_name, current.branch_name, current.namespace)
        self.next(self.end)

    @step
    def end(self) -> None:
        self.later = (current.project_flow_name, current.is_production)


@project(name="movies", branch="pinned")
class Pinned(FlowSpec):
    @step
    def start(self) -> None:
        self.seen = current.branch_name
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class NoProject(FlowSpec):
    @step
    def start(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


@pytest.fixture
def alice(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ASYNCFLOW_USER", "alice")
    yield


@pytest.mark.anyio
async def test_branch_and_production_are_constructor_arguments(store: str, alice: None) -> None:
    run = await Tiny(store=store, echo=False).run()
    assert run["start"].task.data.seen == ("movies", "user.alice", "user:alice")
    run = await Tiny(store=store, echo=False, branch="exp").run()
    assert run["start"].task.data.seen == ("movies", "test.exp", "user:alice")
    assert run["end"].task.data.later == ("movies.test.exp.Tiny", False)
    run = await Tiny(store=store, echo=False, production=True).run()
    assert run["end"].task.data.later == ("movies.prod.Tiny", True)


@pytest.mark.anyio
async def test_a_process_step_sees_the_project_too(store: str, alice: None) -> None:
    run = await Tiny(store=store, echo=False, executor="process", branch="p").run()
    assert run["end"].task.data.later == ("movies.test.p.Tiny", False)


@pytest.mark.anyio
async def test_a_branch_in_the_decorator_is_used_and_not_given_twice(
    store: str, alice: None
) -> None:
    run = await Pinned(store=store, echo=False).run()
    assert run["start"].task.data.seen == "test.pinned"
    with pytest.raises(UsageError, match="sets branch in its @project already"):
        Pinned(store=store, branch="other")


def test_branch_options_need_a_project_and_a_good_name(store: str) -> None:
    with pytest.raises(UsageError, match="has no @project, so it has no branches"):
        NoProject(store=store, branch="x")
    with pytest.raises(UsageError, match="has no @project"):
        NoProject(store=store, production=True)
    with pytest.raises(UsageError, match="more than 128"):
        Tiny(store=store, branch="b" * 129)
    with pytest.raises(UsageError, match="production must be True or False"):
        Tiny(store=store, production="yes")  # type: ignore[arg-type]
    assert Tiny(store=store, branch="b" * 128)._af_options.project == (
        "movies",
        "test." + "b" * 128,
    )


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("Movies", "lowercase letters, digits and underscores"),
        ("my-project", "lowercase letters, digits and underscores"),
        ("", "non-empty string"),
        (None, "non-empty string"),
        (7, "non-empty string"),
        ("p" * 129, "more than 128"),
    ],
)
def test_project_refuses_a_name_metaflow_refuses(name: Any, why: str) -> None:
    with pytest.raises(FlowValidationError, match=why):
        project(name=name)
    project(name="p" * 128)  # the longest accepted


def test_project_is_a_flow_decorator_used_once() -> None:
    with pytest.raises(FlowValidationError, match="decorates a flow class"):

        @project(name="movies")
        class NotAFlow:
            pass

    with pytest.raises(FlowValidationError, match="decorates a flow class"):
        project(name="movies")(lambda: None)  # type: ignore[type-var]

    with pytest.raises(FlowValidationError, match="has @project twice"):

        @project(name="a")
        @project(name="b")
        class Twice(FlowSpec):
            pass


def test_the_user_is_found_as_metaflow_finds_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("ASYNCFLOW_USER", "SUDO_USER", "USERNAME", "USER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("USER", "bob")
    assert local_user() == "bob"
    monkeypatch.setenv("USERNAME", "carol")
    assert local_user() == "carol"
    monkeypatch.setenv("SUDO_USER", "root")  # root is passed over, as Metaflow does
    assert local_user() == "carol"
    monkeypatch.setenv("ASYNCFLOW_USER", "alice")
    assert local_user() == "alice"
    assert Tiny(store="x.db")._af_options.project == ("movies", "user.alice")


def test_current_outside_a_step_says_none() -> None:
    assert current.namespace is None and current.project_name is None
    assert current.branch_name is None and current.project_flow_name is None
    assert current.is_user_branch is None and current.is_production is None


@pytest.mark.anyio
async def test_a_subclass_inherits_the_project(store: str, alice: None) -> None:
    class Sub(Tiny):
        pass

    run = await Sub(store=store, echo=False).run()
    assert run.project_name == "movies"
    assert run["end"].task.data.later == ("movies.user.alice.Sub", False)
