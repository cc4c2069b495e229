"""Shared fixtures: every async test runs on asyncio; every store is a real file in tmp_path."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def store(tmp_path: Path) -> str:
    """Path of a fresh store file (not created yet) in a temporary folder."""
    return str(tmp_path / "store.db")


@pytest.fixture(autouse=True, scope="session")
def _signing_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One signing key for the whole test session, never the developer's own
    (``~/.local/share/asyncflow/key``); child processes inherit it through the environment."""
    key = tmp_path_factory.mktemp("user") / "key"
    saved = os.environ.get("ASYNCFLOW_KEY_FILE")
    os.environ["ASYNCFLOW_KEY_FILE"] = str(key)
    yield
    if saved is None:
        del os.environ["ASYNCFLOW_KEY_FILE"]
    else:
        os.environ["ASYNCFLOW_KEY_FILE"] = saved
