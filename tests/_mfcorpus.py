"""Run a flow of ``tests/mfcorpus`` as a Metaflow user would: ``python flow.py …`` in a folder
of its own, with no store named unless the test names one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

CORPUS = Path(__file__).parent / "mfcorpus"


def place(name: str, folder: Path) -> Path:
    """Copy the corpus flow ``name`` into ``folder`` and return its new path."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    shutil.copyfile(CORPUS / name, target)
    return target


def run_flow(
    name: str,
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 180,
) -> subprocess.CompletedProcess[str]:
    """``python <name> <args>`` in ``cwd`` (the flow is copied there first, if not already).

    ``$ASYNCFLOW_STORE`` is removed from the environment so the store is found as a user's
    would be; ``env`` adds or overrides variables.
    """
    if not (cwd / name).exists():
        place(name, cwd)
    environ = {k: v for k, v in os.environ.items() if k != "ASYNCFLOW_STORE"}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, name, *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
