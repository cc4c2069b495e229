"""Fuzzing damaged archives AND stores, the stress run: 1,000+ cases of each by default.

    python benchmarks/stress_fuzz.py [--cases 1000] [--store-cases 1000] [--seed S]
                                     [--workers W] [--timeout 20]
    python benchmarks/stress_fuzz.py --replay CASE_SEED [--replay-store]

Archive cases are those of ``benchmarks/fuzz_archive.py`` (random damage and attacker edits of
a run archive; open+read, verify, import+read each). Store cases (``tests/_fuzzstore.py``)
damage a store file (bit flips, overwrites, zeroed, copied and swapped pages, truncation,
appended bytes, flips inside values) holding a pickled canary in an untrusted run, and read
everything the client can read. Each case runs in a worker process whose address space is
capped at 3 GiB, with a timeout. Printed: outcomes per operation, raw (non-AsyncflowError)
exceptions, hangs, code executions (canary markers), the peak memory of a worker, clear
errors by type and outcomes by mutation kind. The exit code is 1 if any case is OTHER.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The harness lives with the tests (so CI runs the very same code): make them importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests._fuzzpool import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    if not any(a.startswith("--store-cases") for a in argv) and "--replay" not in argv:
        argv = ["--store-cases", "1000", *argv]
    sys.exit(main(argv, prog="benchmarks/stress_fuzz.py"))
