"""What ``spin`` reads: the store or run archive, read-only, and the stored run in it.

A store's read-only connection leaves a write-ahead log beside the file as it found it (a
killed run's last commits stay there, and the file's bytes do not change); an archive's
records are checked against its manifest when it is opened, and every value read from it
against its sha. With ``trust``, a pickle loads whoever signed it, if its bytes are intact.
"""

from __future__ import annotations

import sqlite3

from .._errors import NotFoundError, store_option
from .._store._blobs import RawBlob
from .._store._db import open_reader
from .._store._format import is_archive
from .._store._manifest import check_blob, verify_records
from .._store._plans import BEGIN_READ, END_READ
from .._store._reader import BlobReader
from .._store._resume_reads import ResumeSource, resume_source
from .._store._signing import PICKLE, Problem, blob_problem

__all__ = ["SpinReader", "load_run"]

# Blobs kept in memory by a spin's reader (it reads one task's inputs).
_CACHE_BYTES = 64 << 20


class SpinReader(BlobReader):
    """A read-only reader of a store or a run archive; every blob read from an archive is
    checked against its sha (the records were checked when it was opened)."""

    def __init__(self, path: str, trust: bool) -> None:
        super().__init__(path, _CACHE_BYTES)
        self.archive = False
        self.trust = trust

    def check(self, raw: RawBlob) -> Problem | None:
        # trust=True (--trust): a pickle loads whoever signed it, if its bytes are intact.
        if self.trust and raw.encoding == PICKLE and not raw.vouched:
            return blob_problem(raw, self.key, signed=False)
        return super().check(raw)

    def _conn(self) -> sqlite3.Connection:
        # A log left by a killed run stays a log: folding it into the file would change
        # the file's bytes (a spin leaves the store as it was).
        if self._reader is None:
            self._reader = open_reader(self.path, keep_wal=True)
        return self._reader

    def open(self) -> None:
        """Open the file; for an archive, check its records against its manifest.

        :raises StoreError: no store or archive there, or an archive damaged or edited.
        """
        with self._reader_lock:
            conn = self._conn()
            self.archive = is_archive(conn)
            if self.archive:
                conn.execute(BEGIN_READ)
                try:
                    verify_records(conn, self.path)
                finally:
                    if conn.in_transaction:
                        conn.execute(END_READ)

    def read_raw(self, sha: bytes) -> RawBlob:
        raw = super().read_raw(sha)
        self._check(raw)
        return raw

    def read_raw_many(self, shas: list[bytes], *, check: bool = False) -> dict[bytes, RawBlob]:
        found = super().read_raw_many(shas, check=check)
        for raw in found.values():
            self._check(raw)
        return found

    def _check(self, raw: RawBlob) -> None:
        if self.archive and raw.encoding != PICKLE:  # a pickle is hashed before it loads
            check_blob(raw, self.path, archive=True)


def load_run(path: str, flow: str, run_id: int, trust: bool) -> tuple[SpinReader, ResumeSource]:
    """Open ``path`` and read run ``run_id`` of ``flow`` from it (its tasks, parameters and
    artifact shas); the reader stays open for the spin. Blocking.

    :raises NotFoundError: no such run there (the message says how to list the runs).
    :raises StoreError: no store or archive there, or an archive damaged or edited.
    """
    reader = SpinReader(path, trust)
    try:
        reader.open()
        source = reader.read(resume_source(flow, run_id))
    except BaseException:
        reader.close_reader()
        raise
    if source is None:
        reader.close_reader()
        raise NotFoundError(
            f"flow {flow} has no run {run_id} in {path!r} to spin a task of; list its runs "
            f"with `asyncflow runs {flow}{store_option(path)}`, and pass one of them."
        )
    return reader, source
