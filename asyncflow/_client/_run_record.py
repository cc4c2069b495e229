"""A run's record: the fields read with it (no I/O), and the writes that change it (tags, trust).

:class:`RunRecord` is the part of :class:`~asyncflow._client._run.Run` that holds the run's
row; ``Run`` adds what is read from the store when asked for (parameters, source, steps, the
end task's data).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import anyio.to_thread

from .._errors import StoreError
from .._spec._tags import is_system_tag, normalize_tags, system_tag_value
from .._store._lease import run_crash
from .._store._records import parse_json
from .._store._rows import RunRow
from .._store._tidy import set_tags
from ._handle import StoreHandle
from ._messages import missing_run_plan
from ._task import utc
from ._trust import atrust_run, trust_run

__all__ = ["RunRecord"]


class RunRecord:
    """A run's record as it was read (its fields need no I/O) and the writes that change it;
    the base of :class:`~asyncflow._client._run.Run`, which documents the whole object."""

    __slots__ = ("_crash", "_handle", "_row")

    def __init__(self, handle: StoreHandle, row: RunRow) -> None:
        self._handle = handle
        self._row = row
        # Why the run is dead though its row says running, or None; judged once per snapshot.
        self._crash = run_crash(row)

    # --- the record -------------------------------------------------------------------------
    @property
    def id(self) -> str:
        """The run id."""
        return str(self._row.id)

    @property
    def pathspec(self) -> str:
        """``Flow/run``."""
        return f"{self._row.flow}/{self._row.id}"

    @property
    def flow_name(self) -> str:
        """The name of the run's flow."""
        return self._row.flow

    @property
    def status(self) -> str:
        """``"running"``, ``"succeeded"``, ``"failed"``, ``"cancelled"`` or ``"crashed"``.

        ``"crashed"``: the process running it ended without finishing it (it was killed, or
        its machine stopped); the tasks it finished are kept.
        """
        return "crashed" if self._crash is not None else self._row.status

    @property
    def successful(self) -> bool:
        """True if the run succeeded."""
        return self._row.status == "succeeded"

    @property
    def finished(self) -> bool:
        """True once the run succeeded, failed, was cancelled or crashed."""
        return self.status != "running"

    @property
    def created_at(self) -> datetime:
        """When the run started (UTC)."""
        return utc(self._row.created_at)

    @property
    def finished_at(self) -> datetime | None:
        """When the run ended (UTC), or None while it runs; for a crashed run, the last time
        its process was known to be alive (its last heartbeat)."""
        if self._crash is not None and self._row.heartbeat_at is not None:
            return utc(self._row.heartbeat_at)
        return None if self._row.finished_at is None else utc(self._row.finished_at)

    @property
    def tags(self) -> frozenset[str]:
        """The run's user tags: those given with ``FlowSpec(tags=...)``, ``--tag`` or
        :meth:`add_tag` (the same as :attr:`user_tags`). Unlike Metaflow's ``tags``, this
        leaves the system tags out: they are :attr:`system_tags`."""
        return frozenset(t for t in self._row.tags if not is_system_tag(t))

    @property
    def user_tags(self) -> frozenset[str]:
        """The run's user tags (Metaflow's ``user_tags``): the same as :attr:`tags`."""
        return self.tags

    @property
    def system_tags(self) -> frozenset[str]:
        """The tags asyncflow recorded when the run started, which cannot be removed:
        ``user:<name>``, ``runtime:dev``, ``python_version:<x.y.z>``, ``date:<YYYY-MM-DD>``
        (UTC), ``asyncflow_version:<v>``, and for a ``@project`` flow ``project:<name>`` and
        ``project_branch:<branch>``. Empty for runs recorded before asyncflow kept them."""
        return frozenset(t for t in self._row.tags if is_system_tag(t))

    @property
    def project_name(self) -> str | None:
        """The ``@project`` name the run was recorded under, or None."""
        return system_tag_value(self._row.tags, "project")

    @property
    def branch_name(self) -> str | None:
        """The run's ``@project`` branch (``user.<name>``, ``test.<branch>``, ``prod``...),
        or None."""
        return system_tag_value(self._row.tags, "project_branch")

    @property
    def origin_run_id(self) -> str | None:
        """For a resumed run, the id of the run it resumed; else None."""
        origin = self._row.origin_run_id
        return None if origin is None else str(origin)

    @property
    def error(self) -> str | None:
        """Why the run failed, was cancelled or crashed, or None."""
        if self._crash is not None:
            return f"the run crashed: {self._crash}; the tasks it finished are kept"
        return self._row.error

    @property
    def graph(self) -> dict[str, Any]:
        """The flow's graph as stored with the run (a fresh dict from its JSON)."""
        graph = self._json("graph", self._row.graph)
        return graph if isinstance(graph, dict) else {"graph": graph}

    def _json(self, column: str, text: Any) -> Any:
        # The JSON of a run's record: damage in the file must be a StoreError, not a raw one.
        try:
            return parse_json(text)  # also refuses JSON nested too deep to build
        except ValueError as exc:
            raise StoreError(
                f"the {column} stored with run {self.pathspec} is not valid JSON: the store "
                f"file {self._handle.path!r} is damaged there; restore it from a copy.",
                self._handle.path,
            ) from exc

    # --- identity across stores -------------------------------------------------------------
    @property
    def uid(self) -> str | None:
        """The run's identity across stores: kept by export and import (None only for runs
        recorded before schema 3 that were never upgraded)."""
        return self._row.uid

    @property
    def imported_from(self) -> dict[str, Any] | None:
        """For a run imported from an archive: where it came from (``archive`` file name,
        ``run_id`` it had, ``exported_by`` host/user/store, ``exported_at``, ``imported_at``,
        the archive's ``digest``); else None."""
        if self._row.imported is None:
            return None
        found = self._json("provenance", self._row.imported)
        return found if isinstance(found, dict) else None

    # --- tags -------------------------------------------------------------------------------
    def add_tag(self, *tags: str) -> None:
        """Add ``tags`` to the run, in the store and in :attr:`tags` of this object.

        Tags are taken as ``FlowSpec(tags=...)`` takes them; a tag the run has stays once.
        The write is one short transaction of its own.

        :raises UsageError: a tag starts like a system tag (``user:``, ``date:``, ...).
        :raises StoreError: the store cannot be written (e.g. it is a run archive, which is
            read-only: import it first).
        :raises NotFoundError: the run is no longer in the store (``asyncflow.gc`` deleted it).
        """
        self._set_tags(normalize_tags(tags), ())

    def remove_tag(self, *tags: str) -> None:
        """Remove ``tags`` from the run, in the store and in :attr:`tags` of this object.

        Removing a tag the run does not have is not an error.

        :raises UsageError: a tag is a system tag (:attr:`system_tags`): those stay.
        :raises StoreError: the store cannot be written (e.g. it is a run archive).
        :raises NotFoundError: the run is no longer in the store.
        """
        self._set_tags((), normalize_tags(tags, removing=True))

    async def aadd_tag(self, *tags: str) -> None:
        """The awaitable twin of :meth:`add_tag` (the write runs in a worker thread).

        :raises StoreError: the store cannot be written (e.g. it is a run archive).
        :raises NotFoundError: the run is no longer in the store.
        """
        await anyio.to_thread.run_sync(self._set_tags, normalize_tags(tags), ())

    async def aremove_tag(self, *tags: str) -> None:
        """The awaitable twin of :meth:`remove_tag` (the write runs in a worker thread).

        :raises StoreError: the store cannot be written (e.g. it is a run archive).
        :raises NotFoundError: the run is no longer in the store.
        """
        await anyio.to_thread.run_sync(self._set_tags, (), normalize_tags(tags, removing=True))

    def _set_tags(self, add: tuple[str, ...], remove: tuple[str, ...]) -> None:
        if not add and not remove:
            return
        row = self._row
        found = set_tags(self._handle.path, row.flow, row.id, add, remove)
        if found is None:
            raise self._handle.run(missing_run_plan(row.flow, row.id, self._handle.path))
        self._row = dataclasses.replace(row, tags=found)

    # --- trust ------------------------------------------------------------------------------
    @property
    def trusted(self) -> bool:
        """Whether the run's pickled values may load: it ran into this store on this machine
        (or was trusted since, with :meth:`trust` or ``asyncflow trust``), or its Flow was
        opened with ``trust=True``. msgpack and numpy values load either way; a pickled
        value must also carry your signature and match its hash (see the README, "Safe
        loading of other people's runs")."""
        return self._row.trusted or self._handle.trust

    def trust(self) -> None:
        """Trust this run: check every pickled value it holds (artifacts and parameters)
        against its hash, sign each with your key and mark the run trusted, in one
        transaction. Do it only for runs whose author you trust: unpickling runs code.

        :raises StoreError: a value's bytes do not match their hash (nothing is changed
            then); the run is in a run archive, which is read-only (import it with
            ``trust=True`` instead); the store or your key file cannot be written.
        """
        trust_run(self._handle, self._row.flow, self._row.id)
        self._row = dataclasses.replace(self._row, trusted=True)

    async def atrust(self) -> None:
        """The awaitable twin of :meth:`trust` (the checks and the write run in a worker
        thread).

        :raises StoreError: as :meth:`trust`.
        """
        await atrust_run(self._handle, self._row.flow, self._row.id)
        self._row = dataclasses.replace(self._row, trusted=True)
