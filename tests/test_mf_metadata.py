"""get_metadata(), metadata(), default_metadata() mean "which store" (issue 11), and version
information where Metaflow users look for it (README, "Coming from Metaflow")."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import asyncflow
from asyncflow import Flow, FlowSpec, UsageError, default_metadata, get_metadata, metadata, step


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.delenv("ASYNCFLOW_STORE", raising=False)
    monkeypatch.chdir(tmp_path)
    default_metadata()
    yield
    default_metadata()


class Probe(FlowSpec):
    @step
    def start(self) -> None:
        self.seen = get_metadata()  # inside a step: the run's own store, whatever was chosen
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


def test_get_metadata_names_the_default_store_as_metaflow_names_local_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert get_metadata() == f"local@{tmp_path / 'asyncflow.db'}"
    monkeypatch.setenv("ASYNCFLOW_STORE", "env.db")
    assert get_metadata() == f"local@{tmp_path / 'env.db'}"


@pytest.mark.anyio
async def test_metadata_switches_the_store_of_the_client_and_of_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASYNCFLOW_STORE", "env.db")  # metadata() wins over the variable
    chosen = tmp_path / "sub" / "chosen.db"
    chosen.parent.mkdir()
    assert metadata("sub/chosen.db") == f"local@{chosen}"
    os.chdir(chosen.parent)  # a relative path was made absolute when chosen
    assert get_metadata() == f"local@{chosen}"
    run = await Probe(echo=False).run()  # a run without store= goes there too
    assert run.data.seen == f"local@{chosen}"
    assert Flow("Probe").latest_run.id == run.id
    assert not (tmp_path / "env.db").exists()
    assert metadata(f"local@{tmp_path / 'other.db'}") == f"local@{tmp_path / 'other.db'}"
    assert default_metadata() == f"local@{chosen.parent / 'env.db'}"  # $ASYNCFLOW_STORE again


@pytest.mark.anyio
async def test_inside_a_step_the_runs_own_store_wins_over_metadata(tmp_path: Path) -> None:
    metadata(tmp_path / "chosen.db")
    run = await Probe(store=str(tmp_path / "own.db"), echo=False).run()
    assert run.data.seen == f"local@{tmp_path / 'own.db'}"


@pytest.mark.parametrize("spec", ["service@https://mf.example.com", "https://mf.example.com"])
def test_a_metadata_service_is_refused(spec: str) -> None:
    with pytest.raises(UsageError, match="asyncflow records runs in a store file"):
        metadata(spec)
    assert get_metadata().endswith("asyncflow.db")  # unchanged


def test_version_information_where_metaflow_users_look() -> None:
    from asyncflow import metaflow_version
    from asyncflow.metaflow_version import get_version

    assert get_version() == asyncflow.__version__ == metaflow_version.get_version(public=True)
