"""Archive fuzzing, the stress run: damage and edit a run archive at random, many times.

    python benchmarks/fuzz_archive.py [--cases 1000] [--seed S] [--workers W] [--timeout 20]
    python benchmarks/fuzz_archive.py --replay CASE_SEED      # one case again, in detail

Builds a reference archive from ``tests/flows/fuzz.py`` (three runs: succeeded, failed with a
caught and an uncaught exception, resumed; a foreach with a join; parameters, tags; values of
every codec, a 1.2 MiB numpy array in chunks, ordinary pickles and a pickled canary), then for
each case copies it, applies one random mutation (random damage, or an attacker's SQL edit
with the digest recomputed) and opens + reads, verifies, and imports + reads it, each in a
worker process with a timeout. What counts as the right outcome is defined in
``tests/_fuzzarchive.py``; the CI test running the same harness is
``tests/test_fuzz_archive.py``.

Printed: the command with its seed, the outcomes of each operation (same, clear error,
accepted self-consistent attacker edit, OTHER), clear errors by type, outcomes by mutation
kind, the time, and every OTHER case with its seed (replay it with ``--replay``). OTHER must
be 0: the exit code is 1 otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The harness lives with the tests (so CI runs the very same code): make them importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests._fuzzpool import main

if __name__ == "__main__":
    sys.exit(main())
