"""What travels to a worker and back: a run's pack, a task's job, the task's reply.

A :class:`RunPack` is what every task of one run shares (the flow class and its graph, the
store file, the parameters); it is sent to a worker once per run. A :class:`Job` is one
attempt at one task: small (names and content hashes, the foreach frames), never the
parent's values, which the worker reads itself. A :class:`Reply` carries back only what the
task set, encoded (payloads as raw buffers beside the header, see ``_wire``), its captured
output, its timing and its error.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from .._codecs import Encoded, OwnedBuffer
from .._spec._flowbase import ForeachFrame

__all__ = ["BlobHead", "Job", "ParentRef", "RemoteError", "Reply", "RunPack"]


class RemoteError(Exception):
    """A step's exception that could not be sent back as itself (it would not pickle or
    unpickle); its type's name and message, and the worker's traceback, are kept."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message

    def __reduce__(self) -> tuple[type[RemoteError], tuple[str, str]]:
        return (RemoteError, (self.type_name, self.message))


@dataclass(frozen=True, slots=True)
class RunPack:
    """What the tasks of one run share, sent to each worker once (see the module doc).

    ``flow`` is the cloudpickled ``(flow class, graph name, graph doc, nodes)``: a class
    importable by module path travels as a reference (the worker imports it, with the
    coordinator's ``sys.path``), one defined in ``__main__`` or a notebook by value.
    """

    key: str
    flow: bytes
    store_path: str
    key_path: str
    run_id: int
    origin_run_id: int | None
    params: dict[str, bytes]
    budgeted: bool
    cache_bytes: int
    sys_path: tuple[str, ...] = field(default_factory=lambda: tuple(sys.path))
    system_tags: tuple[str, ...] = ()  # for ``current`` in the worker


@dataclass(frozen=True, slots=True)
class ParentRef:
    """One input of a join: the parent task and its complete name -> sha mapping."""

    task_id: int
    step: str
    path: tuple[int, ...]
    refs: dict[str, bytes]


@dataclass(frozen=True, slots=True)
class Job:
    """One attempt at one task, as a worker needs it."""

    run: str  # RunPack.key
    task_id: int
    step: str
    path: tuple[int, ...]
    stack: tuple[ForeachFrame, ...]
    base: dict[str, bytes]
    inputs: tuple[ParentRef, ...] | None
    attempt: int
    keep_on_error: bool  # @catch: send back what the failed attempt set
    pass_index: int = 0  # for ``current.pass_index`` in the worker


@dataclass(frozen=True, slots=True)
class BlobHead:
    """An encoded value without its payload (the payload travels as a raw buffer)."""

    encoding: str
    meta: bytes | None
    sha: bytes
    size: int


@dataclass(slots=True)
class Reply:
    """What a worker sends back for a job. ``blobs`` are filled in from the buffers."""

    started: float
    finished: float
    stdout: str | None
    stderr: str | None
    refs: dict[str, bytes] | None  # None when the attempt failed and nothing is kept
    heads: list[BlobHead]
    targets: tuple[str, ...] = ()
    items: list[Any] | None = None
    error: BaseException | None = None
    traceback: str | None = None
    ready: bool = True  # False: the worker could not set up the run (it needs the pack again)
    blobs: list[Encoded] = field(default_factory=list)
    # The stored form of the task's cards (_runtime/_cards.CardDoc), succeeded or failed.
    cards: list[Any] | None = None

    def attach(self, buffers: list[bytes | OwnedBuffer]) -> None:
        """Rebuild :attr:`blobs` from the heads and the received payload buffers."""
        self.blobs = [
            Encoded(
                h.encoding,
                h.meta,
                buf if isinstance(buf, bytes) else memoryview(buf),
                h.sha,
                h.size,
            )
            for h, buf in zip(self.heads, buffers, strict=True)
        ]
