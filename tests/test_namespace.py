"""namespace(), get_namespace(), default_namespace() (issue 11): asyncflow's default is every
run (None), unlike Metaflow's `user:<you>`; a namespace set filters every listing of the
client to the runs carrying that tag, and a lookup outside it says so (README, "Projects,
system tags and namespaces")."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

import asyncflow
from asyncflow import (
    Flow,
    FlowSpec,
    Metaflow,
    NamespaceMismatchError,
    NotFoundError,
    UsageError,
    alist_flows,
    default_namespace,
    get_namespace,
    list_flows,
    namespace,
    project,
    step,
)
from tests._mfcorpus import run_flow


@pytest.fixture(autouse=True)
def global_namespace() -> Iterator[None]:
    """Every test starts and ends in the default namespace (the value is process-wide)."""
    default_namespace()
    yield
    default_namespace()


@project(name="movies")
class Films(FlowSpec):
    @step
    def start(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class Chores(FlowSpec):
    @step
    def start(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


async def _by(user: str, flow: type[FlowSpec], store: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ASYNCFLOW_USER", user)
    return (await flow(store=store, echo=False).run()).id


@pytest.fixture
def populated(store: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Films/1 alice, Films/2 bob, Chores/3 bob: run ids by who and what."""

    async def fill() -> dict[str, str]:
        return {
            "films_alice": await _by("alice", Films, store, monkeypatch),
            "films_bob": await _by("bob", Films, store, monkeypatch),
            "chores_bob": await _by("bob", Chores, store, monkeypatch),
        }

    return asyncio.run(fill())


def test_the_default_namespace_is_every_run(store: str, populated: dict[str, str]) -> None:
    assert get_namespace() is None
    assert [r.id for r in Flow("Films", store).runs()] == ["2", "1"]
    assert list_flows(store) == ["Chores", "Films"]


def test_a_user_namespace_filters_every_listing(store: str, populated: dict[str, str]) -> None:
    assert namespace("user:alice") == "user:alice" == get_namespace()
    films = Flow("Films", store)
    assert [r.id for r in films.runs()] == [populated["films_alice"]]
    assert [r.id for r in films] == [populated["films_alice"]]
    latest = films.latest_run
    assert latest is not None and latest.id == populated["films_alice"]
    successful = films.latest_successful_run
    assert successful is not None and successful.id == populated["films_alice"]
    assert list_flows(store) == ["Films"]  # alice ran no Chores
    assert [f.name for f in Metaflow(store).flows] == ["Films"]
    assert films.runs(tag="project:movies")[0].id == populated["films_alice"]


def test_a_project_namespace_shows_the_projects_runs(store: str, populated: dict[str, str]) -> None:
    namespace("project:movies")
    assert list_flows(store) == ["Films"]
    assert {r.id for r in Flow("Films", store).runs()} == {"1", "2"}


def test_a_run_outside_the_namespace_is_refused_by_name(
    store: str, populated: dict[str, str]
) -> None:
    namespace("user:alice")
    films = Flow("Films", store)
    with pytest.raises(NamespaceMismatchError) as info:
        films[populated["films_bob"]]
    message = str(info.value)
    assert "run Films/2 is not in the namespace 'user:alice'" in message
    assert "namespace(None)" in message
    assert info.value.namespace == "user:alice"
    assert isinstance(info.value, NotFoundError) and isinstance(info.value, KeyError)
    assert populated["films_bob"] not in films and populated["films_alice"] in films
    # a run that does not exist at all is still reported as missing
    with pytest.raises(NotFoundError, match="has no run 99"):
        films[99]


def test_a_flow_with_no_run_in_the_namespace_is_refused_by_name(
    store: str, populated: dict[str, str]
) -> None:
    namespace("user:alice")
    with pytest.raises(NamespaceMismatchError) as info:
        Flow("Chores", store)
    assert "flow 'Chores' has no run in the namespace 'user:alice'" in str(info.value)
    assert "namespace(None)" in str(info.value)
    namespace(None)
    assert Flow("Chores", store).latest_run is not None


def test_default_namespace_resets_and_returns_it(store: str, populated: dict[str, str]) -> None:
    namespace("user:bob")
    assert default_namespace() is None
    assert get_namespace() is None
    assert len(Flow("Films", store).runs()) == 2


@pytest.mark.anyio
async def test_the_awaitable_reads_filter_the_same(store: str, populated: dict[str, str]) -> None:
    namespace("user:bob")
    films = await Flow.aopen("Films", store)
    assert [r.id for r in await films.aruns()] == [populated["films_bob"]]
    latest = await films.alatest_run()
    assert latest is not None and latest.id == populated["films_bob"]
    with pytest.raises(NamespaceMismatchError):
        await films.aget(populated["films_alice"])
    assert not await films.acontains(populated["films_alice"])
    assert await alist_flows(store) == ["Chores", "Films"]
    assert [f.name for f in await Metaflow(store).aflows()] == ["Chores", "Films"]
    namespace("user:alice")
    with pytest.raises(NamespaceMismatchError):
        await Flow.aopen("Chores", store)


@pytest.mark.anyio
async def test_one_call_uses_the_namespace_in_force_when_it_started(
    store: str, populated: dict[str, str]
) -> None:
    # Another task changes the process-wide namespace while a read is under way: the read
    # finishes in the namespace it started with.
    namespace("user:alice")
    opening = asyncio.ensure_future(Flow.aopen("Films", store))  # aopen() reads it at once
    namespace("user:nobody")
    films = await opening
    namespace("user:alice")
    for _ in range(20):
        reading = asyncio.ensure_future(films.aruns())
        await asyncio.sleep(0)  # the read has started and awaits its query
        namespace(None)
        assert [r.id for r in await reading] == [populated["films_alice"]]
        namespace("user:alice")


@pytest.mark.parametrize("bad", [7, "", "   ", b"user:alice", "user:\ud800"])
def test_a_namespace_is_a_tag_or_none(bad: object) -> None:
    with pytest.raises(UsageError, match="namespace"):
        namespace(bad)  # type: ignore[arg-type]
    assert get_namespace() is None


def test_a_flow_file_run_is_found_in_its_users_namespace(tmp_path: Path) -> None:
    done = run_flow("project_flow.py", "run", cwd=tmp_path, env={"ASYNCFLOW_USER": "carol"})
    assert done.returncode == 0, done.stderr
    store = tmp_path / "asyncflow.db"
    namespace("user:carol")
    run = Flow("PlayListFlow", store).latest_run
    assert run is not None and run["start"].task.data.seen_namespace == "user:carol"
    namespace("project:movies")
    again = Flow("PlayListFlow", store).latest_run
    assert again is not None and again.id == run.id
    namespace("user:dave")
    assert list_flows(store) == []


@pytest.mark.anyio
async def test_runs_resumes_and_gc_ignore_the_namespace(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    namespace("user:nobody")
    monkeypatch.setenv("ASYNCFLOW_USER", "erin")
    run = await Chores(store=store, echo=False).run()
    resumed = await Chores(store=store, echo=False).resume()  # the latest run, whoever's
    assert resumed.origin_run_id == run.id
    report = asyncflow.gc(store, keep_last=1, flow="Chores")
    assert list(report.deleted) == [f"Chores/{run.id}"]
    assert get_namespace() == "user:nobody"
