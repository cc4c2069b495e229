"""Metaflow names asyncflow does not provide stop at the import with one clear line saying
why and what instead (docs/metaflow.md), never Python's bare "cannot import name"."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import asyncflow
import asyncflow.cards
from asyncflow import AsyncflowError, NotSupportedError
from asyncflow._spec._refused import REFUSED


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_importing_a_refused_metaflow_name_says_why_and_what_instead(name: str) -> None:
    module, _, short = name.rpartition(".")
    with pytest.raises(NotSupportedError) as caught:
        exec(f"from asyncflow{'.' + module if module else ''} import {short}", {})
    error = caught.value
    assert isinstance(error, ImportError) and isinstance(error, AsyncflowError)
    assert error.feature == name and error.name == name
    text = str(error)
    assert text.startswith(f"{name} is a Metaflow name asyncflow does not provide: ")
    assert len(text) > len(name) + 60  # a reason and an alternative, not just a refusal


def test_an_unknown_name_is_still_a_plain_attribute_error() -> None:
    assert not hasattr(asyncflow, "no_such_name")
    assert not hasattr(asyncflow.cards, "no_such_name")
    with pytest.raises(ImportError, match="cannot import name 'no_such_name'"):
        exec("from asyncflow import no_such_name", {})


def test_every_public_name_imports_and_no_refused_name_is_public() -> None:
    for name in asyncflow.__all__:
        assert getattr(asyncflow, name) is not None
    assert not set(REFUSED) & set(asyncflow.__all__)


def test_a_flow_file_importing_a_refused_name_fails_at_that_line_with_the_reason(
    tmp_path: Path,
) -> None:
    flow = tmp_path / "s3flow.py"
    flow.write_text(
        textwrap.dedent(
            """
            from asyncflow import FlowSpec, step, S3

            class S3Flow(FlowSpec):
                @step
                def start(self):
                    self.next(self.end)

                @step
                def end(self):
                    pass

            if __name__ == "__main__":
                S3Flow()
            """
        )
    )
    out = subprocess.run(
        [sys.executable, str(flow), "run"], cwd=tmp_path, capture_output=True, text=True
    )
    assert out.returncode != 0
    assert "S3 is a Metaflow name asyncflow does not provide" in out.stderr
    assert "boto3" in out.stderr
    assert not (tmp_path / "asyncflow.db").exists()
