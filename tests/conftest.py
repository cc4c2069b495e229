"""Shared fixtures: every async test runs on asyncio; every store is a real file in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def store(tmp_path: Path) -> str:
    """Path of a fresh store file (not created yet) in a temporary folder."""
    return str(tmp_path / "store.db")
