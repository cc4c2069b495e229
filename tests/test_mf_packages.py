"""@conda, @conda_base, @pypi, @pypi_base and --environment (issue 11): asyncflow builds no
environments; before a run it checks each package is installed here, refuses to start when
one is not (naming it and the pip command), and warns once when versions differ (README,
"Coming from Metaflow")."""

from __future__ import annotations

import importlib.metadata
import sys
import warnings
from pathlib import Path

import pytest

from asyncflow import (
    AsyncflowWarning,
    Flow,
    FlowSpec,
    FlowValidationError,
    conda,
    conda_base,
    pypi,
    pypi_base,
    step,
)
from asyncflow._runtime._packages import installed_version, version_matches
from tests._mfcorpus import run_flow

ABSENT = "asyncflow-no-such-package-xyz"


# --- as a user runs a flow file ---------------------------------------------------------------


@pytest.mark.parametrize("environment", [[], ["--environment=conda"], ["--environment", "pypi"]])
def test_a_flow_whose_packages_are_installed_runs_with_or_without_environment(
    tmp_path: Path, environment: list[str]
) -> None:
    done = run_flow("conda_flow.py", *environment, "run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr  # numpy >=1.20, msgpack, cloudpickle >=2: all fine
    run = Flow("CondaFlow", store=str(tmp_path / "asyncflow.db")).latest_run
    assert run.successful and run.data.total == 6 and run["start"].task.data.packed == 4


def test_a_missing_package_stops_the_run_before_anything_is_stored(tmp_path: Path) -> None:
    done = run_flow("conda_missing_flow.py", "--environment=pypi", "run", cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("error: MissingPackageFlow needs packages")
    assert f"{ABSENT} (step start)" in lines[0]
    assert f"-m pip install {ABSENT}==1.5.3" in lines[0]
    assert "numpy" not in lines[0]  # installed: not asked to install it again
    assert not (tmp_path / "asyncflow.db").exists()  # nothing stored, not even the file
    assert "started" not in done.stdout


def test_check_also_checks_the_packages(tmp_path: Path) -> None:
    done = run_flow("conda_missing_flow.py", "check", cwd=tmp_path)
    assert done.returncode == 2 and f"{ABSENT} (step start)" in done.stderr
    assert not (tmp_path / "asyncflow.db").exists()


def test_another_version_or_python_is_one_warning_naming_both(tmp_path: Path) -> None:
    done = run_flow("conda_version_flow.py", "run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    warned = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warned) == 1, done.stderr
    import numpy

    installed = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert f"numpy 1.5.3 is asked for (@conda), {numpy.__version__} is installed" in warned[0]
    assert f"Python 3.6.15 is asked for, {installed}" in warned[0]
    assert "(steps start, end)" in warned[0]
    assert Flow("VersionFlow", store=str(tmp_path / "asyncflow.db")).latest_run.successful


def test_an_unknown_environment_is_a_usage_error(tmp_path: Path) -> None:
    done = run_flow("conda_flow.py", "--environment=docker", "run", cwd=tmp_path)
    assert done.returncode == 2 and "invalid choice: 'docker'" in done.stderr
    assert not (tmp_path / "asyncflow.db").exists()


# --- embedded: await flow.run() checks the same ------------------------------------------------


class Missing(FlowSpec):
    @conda(packages={"conda-forge::" + ABSENT: ">=2,<3"}, python=">=3.8")
    @step
    def start(self) -> None:
        self.next(self.end)

    @pypi(packages={"another-absent-package-xyz": ""})
    @step
    def end(self) -> None:
        pass


@pytest.mark.anyio
async def test_embedded_run_refuses_missing_packages_and_stores_nothing(store: str) -> None:
    with pytest.raises(FlowValidationError) as info:
        await Missing(store=store, echo=False).run()
    message = str(info.value)
    assert f"{ABSENT} (step start)" in message  # the channel is dropped for pip
    assert "another-absent-package-xyz (step end)" in message
    assert f"-m pip install '{ABSENT}>=2,<3' another-absent-package-xyz" in message
    assert not Path(store).exists()


@conda_base(packages={"numpy": "0.1"}, python="2.7")
class OldNumpy(FlowSpec):
    @conda(packages={"numpy": ">=1"})  # the step's version wins over the flow's
    @step
    def start(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        self.done = True


@pytest.mark.anyio
async def test_embedded_run_warns_once_for_versions_and_runs(store: str) -> None:
    with pytest.warns(AsyncflowWarning) as caught:
        run = await OldNumpy(store=store, echo=False).run()
    assert run.successful and run.data.done
    assert len(caught) == 1
    text = str(caught[0].message)
    assert "numpy 0.1 is asked for (@conda)" in text and "(step end)" in text
    assert "Python 2.7 is asked for" in text and "(steps start, end)" in text
    assert "step start)" not in text.split("Python")[0]  # start asked for numpy >=1


@pypi_base(packages={ABSENT: "1"}, disabled=True)
class Disabled(FlowSpec):
    @pypi(packages={ABSENT: "1"}, disabled=True)
    @step
    def start(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


@pytest.mark.anyio
async def test_disabled_requests_are_not_checked(store: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert (await Disabled(store=store, echo=False).run()).successful


class Bare(FlowSpec):
    @conda
    @step
    def start(self) -> None:
        self.next(self.end)

    @pypi
    @step
    def end(self) -> None:
        pass


@pytest.mark.anyio
async def test_bare_decorators_ask_for_nothing(store: str) -> None:
    assert (await Bare(store=store, echo=False).run()).successful


# --- the rules, one by one ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("installed", "spec", "ok"),
    [
        ("1.5.3", "1.5.3", True),
        ("1.5.4", "1.5.3", False),
        ("1.5.4", "1.5", True),  # a short version is a series, as conda reads it
        ("1.6.0", "1.5", False),
        ("1.5.2", "1.5.*", True),
        ("2.0", ">=1.5", True),
        ("1.4.9", ">=1.5", False),
        ("1.9", ">=1.5,<2", True),
        ("2.0", ">=1.5,<2", False),
        ("1.5", "==1.5.0", True),
        ("1.7", "~=1.5", True),
        ("2.0", "~=1.5", False),
        ("1.6", "!=1.6", False),
        ("2.4.6", "", True),
        ("2.4.6", "latest", True),  # not a version: never a reason to complain
    ],
)
def test_version_specs_as_metaflow_users_write_them(installed: str, spec: str, ok: bool) -> None:
    assert version_matches(installed, spec) is ok


def test_packages_are_found_by_distribution_name_without_importing_them() -> None:
    before = set(sys.modules)
    assert isinstance(installed_version("msgpack"), str)
    assert isinstance(installed_version("conda-forge::numpy"), str)  # a channel is dropped
    assert installed_version("py-msgpack") == installed_version("msgpack")  # conda's py- names
    assert installed_version("typing-extensions") is not None
    assert installed_version("json") is None  # importable, no version recorded
    assert not isinstance(installed_version(ABSENT), str | type(None))
    # A distribution installed here whose modules nobody imported yet: looked up, not imported.
    tops = importlib.metadata.packages_distributions()
    dists = {d for top, ds in tops.items() if top not in sys.modules for d in ds}
    dists -= {d for top, ds in tops.items() if top in sys.modules for d in ds}
    unimported = sorted(dists)[0]
    assert isinstance(installed_version(unimported), str)
    assert not {m.split(".")[0] for m in set(sys.modules) - before} & set(tops)


def test_a_step_decorator_on_a_non_step_is_refused() -> None:
    def helper(self: object) -> None:
        pass

    with pytest.raises(FlowValidationError, match="@conda is applied to 'helper'"):
        conda(packages={"numpy": ""})(helper)
